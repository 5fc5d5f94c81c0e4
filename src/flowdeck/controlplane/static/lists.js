// flowdeck dashboard, run lists: tick runs (or all on the page) and compare them (GET /compare?runs=...).
"use strict";

(() => {
  for (const form of document.querySelectorAll("form.compare-form")) {
    const boxes = Array.from(form.querySelectorAll('tbody input[type="checkbox"][name="runs"]'));
    const button = form.querySelector("button[data-compare]");
    const count = form.querySelector(".selected-count");
    const header = form.querySelector("thead th .visually-hidden");
    let all = null;
    if (header && boxes.length) {  // a "select all on this page" box in the selection column's header
      all = document.createElement("input");
      all.type = "checkbox";
      all.setAttribute("aria-label", "Select every run on this page");
      header.parentElement.appendChild(all);
      all.addEventListener("change", () => {
        for (const box of boxes) box.checked = all.checked;
        update();
      });
    }

    function update() {
      const selected = boxes.filter((box) => box.checked).length;
      if (button) {
        button.disabled = selected < 2;
        button.title = selected < 2 ? "Select two or more runs to compare them" : "";
      }
      if (count) count.textContent = selected ? `${selected} selected` : "";
      if (all) {
        all.checked = selected > 0 && selected === boxes.length;
        all.indeterminate = selected > 0 && selected < boxes.length;
      }
      for (const box of boxes) box.closest("tr").classList.toggle("selected", box.checked);
    }

    form.addEventListener("change", update);
    update();
  }
})();
