// flowdeck dashboard, pipelines: upload a compiled pipeline (or a new version) through the KFP API as the
// visitor, then open what was created; on failure show the API's one-line message next to the form.
"use strict";

(() => {
  // The pipeline page's graph: name the component of the task that was selected.
  const info = document.querySelector("[data-node-info]");
  const graph = flowdeck.data("graph-json");
  if (info && graph) {
    document.addEventListener("dag-select", (event) => {
      const node = graph.nodes.find((item) => item.id === event.detail);
      if (!node) return;
      const kind = { dag: "a sub-pipeline", loop: "a loop", importer: "an importer", container: "a container task" };
      info.textContent = `${node.label}: ${kind[node.kind] || node.kind} running component ${node.component}.`;
    });
  }

  for (const form of document.querySelectorAll("form[data-url][data-next]")) {
    const error = form.parentElement.querySelector("[data-upload-error]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const file = form.elements.uploadfile.files[0];
      if (!file) return;
      const url = new URL(form.dataset.url, location.href);
      for (const field of ["name", "description", "namespace"]) {
        const input = form.elements[field];
        if (input && input.value.trim()) url.searchParams.set(field, input.value.trim());
      }
      const body = new FormData();
      body.append("uploadfile", file, file.name);
      const button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      if (error) error.hidden = true;
      try {
        const created = await flowdeck.api("POST", url.pathname + url.search, body);
        const id = created && created[form.dataset.id];
        flowdeck.say(`Uploaded ${file.name}.`);
        location.assign(form.dataset.next.replace("{id}", encodeURIComponent(id || "")));
      } catch (failure) {
        if (error) {
          error.textContent = `Upload failed: ${failure.message}`;
          error.hidden = false;
        } else {
          flowdeck.say(`Upload failed: ${failure.message}`, true);
        }
        button.disabled = false;
      }
    });
  }
})();
