/*
 * modelyard in the browser: the version's ONNX graph run by ONNX Runtime Web, behind the
 * input contract (contract.js). No network beyond this folder.
 *
 *   <script src="ort.wasm.min.js"></script>
 *   <script src="contract.js"></script>
 *   <script src="modelyard.js"></script>
 *
 *   const out = await window.modelyard.predict([{size: 120.5, town: "alpha"}]);
 *   out.predictions, out.probabilities, out.classes
 *
 * predict() rejects with a modelyard.ContractError whose .problems are the server's
 * problems ({row, column, kind, message}) word for word.
 */
(function () {
  "use strict";

  const { ContractError, prepare, decodeRecords, decodeCsv, decodeTable } =
    window.modelyardContract;

  // -- the model ----------------------------------------------------------------------

  const ARRAYS = { float64: Float64Array, float32: Float32Array, int64: BigInt64Array };

  // One [rows, k] tensor per dtype (model.groups, in the graph's column order): each
  // tensor crosses into WebAssembly on its own, so few wide inputs beat many narrow ones.
  function feeds(model, decoded, rows) {
    const result = {};
    for (const group of model.groups) {
      const width = group.columns.length;
      const text = group.dtype === "string";
      const data = text ? new Array(rows * width) : new ARRAYS[group.dtype](rows * width);
      for (let j = 0; j < width; j++) {
        const values = decoded.get(group.columns[j]);
        for (let row = 0, at = j; row < rows; row++, at += width) {
          const value = values[row];
          data[at] = text && value === null ? model.missing_category : value;
        }
      }
      result[group.name] = new ort.Tensor(group.dtype, data, [rows, width]);
    }
    return result;
  }

  async function run(loaded, decoded, rows) {
    const { session, document } = loaded;
    const output = await session.run(feeds(document.model, decoded, rows));
    const names = session.outputNames;
    const classes = document.model.classes;
    if (!classes) {
      return { predictions: Array.from(output[names[0]].data, Number) };
    }
    const flat = Array.from(output[names[1]].data, Number);
    const width = classes.length;
    const probabilities = [];
    const predictions = [];
    // A binary model with a decision threshold labels a row positive when the positive
    // class's probability is at least the threshold (as scikit-learn and the server do).
    const threshold = document.model.decision_threshold;
    const positive = threshold ? classes.indexOf(threshold.positive) : -1;
    for (let row = 0; row < rows; row++) {
      const p = flat.slice(row * width, (row + 1) * width);
      let best = 0;
      if (positive >= 0) {
        best = p[positive] >= threshold.value ? positive : 1 - positive;
      } else {
        for (let k = 1; k < width; k++) if (p[k] > p[best]) best = k;
      }
      probabilities.push(p);
      predictions.push(classes[best]);
    }
    return { predictions, probabilities, classes };
  }

  const base = new URL(".", document.currentScript ? document.currentScript.src : location.href);

  async function load() {
    // Revalidated on each load: a folder exported again must not keep an old contract.
    const response = await fetch(new URL("contract.json", base), { cache: "no-cache" });
    if (!response.ok) throw new Error(`cannot read contract.json: HTTP ${response.status}`);
    const document_ = await response.json();
    prepare(document_.contract);
    ort.env.wasm.wasmPaths = base.href;
    // One thread: more need cross-origin isolation, which a plain file server lacks.
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.proxy = false;
    const session = await ort.InferenceSession.create(new URL("model.onnx", base).href, {
      executionProviders: ["wasm"],
    });
    return { document: document_, session };
  }

  let loading = null;
  function loaded() {
    if (loading === null) loading = load();
    return loading;
  }

  /** Every problem of the rows ([] when they fit), without predicting. */
  async function check(rows) {
    const { document: doc } = await loaded();
    try {
      decodeRecords(rows, doc.contract);
      return [];
    } catch (error) {
      if (error instanceof ContractError) return error.problems;
      throw error;
    }
  }

  async function checkCsv(text) {
    const { document: doc } = await loaded();
    try {
      decodeCsv(text, doc.contract);
      return [];
    } catch (error) {
      if (error instanceof ContractError) return error.problems;
      throw error;
    }
  }

  async function predict(rows) {
    const state = await loaded();
    const { decoded, rows: count } = decodeRecords(rows, state.document.contract);
    return run(state, decoded, count);
  }

  async function predictCsv(text) {
    const state = await loaded();
    const { decoded, rows: count } = decodeCsv(text, state.document.contract);
    return run(state, decoded, count);
  }

  /** Rows of text fields (a form's) under a header, read as CSV fields are. */
  async function predictTexts(header, rows) {
    const state = await loaded();
    const { decoded, rows: count } = decodeTable(header, rows, state.document.contract, "one per name");
    return run(state, decoded, count);
  }

  window.modelyard = {
    get ready() {
      return loaded().then(() => true);
    },
    contract: () => loaded().then((state) => state.document),
    ContractError,
    check,
    checkCsv,
    predict,
    predictCsv,
    predictTexts,
  };
})();
