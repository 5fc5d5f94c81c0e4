// flowdeck dashboard: what every page does in the browser. Pages run no inline script (their CSP
// forbids it); data reaches scripts as JSON in <script type="application/json"> blocks.
"use strict";

const flowdeck = (() => {
  const notice = document.getElementById("notice");

  function say(message, isError = false) {
    if (!notice) return;
    notice.textContent = message;
    notice.classList.toggle("error", isError);
    notice.hidden = false;
  }

  // Call the control plane's API as this page's visitor (their login cookie or the single-user mode);
  // resolves to the parsed JSON answer, or rejects with the API's one-line message (an Error whose
  // `status` is the HTTP status; none when the server could not be reached).
  async function api(method, url, body) {
    const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      if (body instanceof FormData) options.body = body;
      else { options.body = JSON.stringify(body); options.headers["Content-Type"] = "application/json"; }
    }
    const answer = await fetch(url, options);
    const text = await answer.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!answer.ok) {
      const error = new Error((data && data.message) || `${answer.status} ${answer.statusText}`);
      error.status = answer.status;
      throw error;
    }
    return data;
  }

  // The JSON a page embedded for its scripts.
  function data(id) {
    const element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  // <button data-method="POST" data-url="..." data-confirm="..." data-done="..."> calls the API, then
  // reloads the page (or goes to data-next).
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-url]");
    if (!button) return;
    event.preventDefault();
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    button.disabled = true;
    try {
      await api(button.dataset.method || "POST", button.dataset.url);
      say(button.dataset.done || "Done.");
      if (button.dataset.next) location.assign(button.dataset.next);
      else location.reload();
    } catch (error) {
      say(error.message, true);
      button.disabled = false;
    }
  });

  // The profile selector: remember the choice (a plain cookie, not a credential) and show it.
  const select = document.getElementById("profile-select");
  if (select) {
    select.addEventListener("change", () => {
      document.cookie = `flowdeck_ns=${encodeURIComponent(select.value)}; path=/; SameSite=Lax`;
      const url = new URL(location.href);
      url.searchParams.set("ns", select.value);
      url.searchParams.delete("page_token");
      location.assign(url);
    });
  }

  // kfp.Client prints KFP UI links (/#/runs/details/<id>): go to the page that shows the object.
  const link = location.hash.match(/^#\/(runs|experiments|pipelines)\/details\/([\w-]+)/);
  if (link) location.replace(`/${link[1]}/${link[2]}`);

  return { api, data, say };
})();
