/*
 * The page around window.modelyard: a form built from contract.json (one field per
 * input, by kind; known categories as choices; required ones marked), a CSV drop
 * zone, and the predictions table. Problems are the contract's own messages.
 */
(function () {
  "use strict";

  const status = document.getElementById("status");
  const form = document.getElementById("row-form");
  const dropZone = document.getElementById("drop-zone");
  const fileInput = document.getElementById("csv-file");

  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
    for (const child of children) node.append(child);
    return node;
  }

  function field(column) {
    const id = `field-${column.name}`;
    let input;
    if (column.kind === "categorical" && column.categories) {
      input = element("select", { id, name: column.name });
      const blank = column.nullable ? "(missing)" : "choose…";
      input.append(element("option", { value: "" }, blank));
      for (const category of column.categories) {
        input.append(element("option", { value: category }, category));
      }
    } else {
      const placeholder =
        column.kind === "datetime" ? "2024-05-31" : column.kind === "numeric" ? "a number" : "text";
      input = element("input", { id, name: column.name, type: "text", placeholder });
      if (column.kind === "numeric") input.setAttribute("inputmode", "decimal");
    }
    const name = element("span", { class: "name" }, column.name);
    if (!column.nullable) {
      name.append(element("span", { class: "required", title: "required" }, " *"));
      input.setAttribute("aria-required", "true");
    }
    name.append(element("span", { class: "kind" }, ` ${column.kind}`));
    const label = element("label", { for: id }, name, input);
    return label;
  }

  function showProblems(error) {
    const box = document.getElementById("problems");
    const list = document.getElementById("problem-list");
    list.replaceChildren();
    if (!error) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    const problems = error.problems || [{ message: String(error.message || error) }];
    document.getElementById("problems-summary").textContent = error.message.split("\n")[0];
    for (const problem of problems) {
      const item = element("li", {}, problem.message);
      if (problem.kind) item.dataset.kind = problem.kind;
      list.append(item);
    }
  }

  function showPredictions(result) {
    const table = document.getElementById("predictions");
    const head = element("tr", {}, element("th", {}, "row"), element("th", {}, "prediction"));
    for (const label of result.classes || []) head.append(element("th", {}, `P(${label})`));
    table.tHead.replaceChildren(head);
    const body = table.tBodies[0];
    body.replaceChildren();
    result.predictions.forEach((prediction, row) => {
      const shown = typeof prediction === "number" ? prediction.toFixed(4) : String(prediction);
      const line = element("tr", {}, element("td", {}, String(row)), element("td", {}, shown));
      for (const p of (result.probabilities || [])[row] || []) {
        line.append(element("td", {}, p.toFixed(4)));
      }
      body.append(line);
    });
  }

  async function show(promise) {
    try {
      const result = await promise;
      showProblems(null);
      showPredictions(result);
      status.textContent = `${result.predictions.length} prediction(s).`;
    } catch (error) {
      showProblems(error);
      document.getElementById("predictions").tBodies[0].replaceChildren();
      status.textContent = "The input does not fit the model.";
    }
  }

  async function readFile(file) {
    if (file) await show(window.modelyard.predictCsv(await file.text()));
  }

  async function start() {
    const doc = await window.modelyard.contract();
    document.title = `${doc.model.ref} · modelyard`;
    document.getElementById("title").textContent = `${doc.model.ref} (${doc.model.task})`;
    const columns = doc.contract.columns;
    for (const column of columns) form.append(field(column));
    form.append(element("button", { type: "submit", id: "predict-row" }, "Predict"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const texts = columns.map((column) => form.elements[column.name].value);
      show(window.modelyard.predictTexts(columns.map((column) => column.name), [texts]));
    });
    fileInput.addEventListener("change", () => readFile(fileInput.files[0]));
    dropZone.addEventListener("dragover", (event) => {
      event.preventDefault();
      dropZone.classList.add("over");
    });
    dropZone.addEventListener("dragleave", () => dropZone.classList.remove("over"));
    dropZone.addEventListener("drop", (event) => {
      event.preventDefault();
      dropZone.classList.remove("over");
      readFile(event.dataTransfer.files[0]);
    });
    status.textContent = "Ready: fill in the form or drop a CSV file.";
    document.body.dataset.ready = "true";
  }

  start().catch((error) => {
    status.textContent = `The model could not be loaded: ${error.message || error}`;
    document.body.dataset.ready = "error";
  });
})();
