  // One part of contract.js, which `modelyard export --target web` joins from
  // begin.js, python.js, rules.js, csv.js and end.js: the parts share one scope.
  // This part: CSV text, read as the server reads it, then checked by the rules.

  // -- CSV (modelyard.serving.protocols._parse.decode_csv) -----------------------------

  /**
   * CSV text as rows of fields, as Python's csv.reader (the excel dialect) reads it:
   * quotes double to escape, a quote inside an unquoted field is kept, blank lines are
   * skipped, text ending inside quotes ends the field, and a lone carriage return
   * outside quotes is an error. Hand-written because the page loads nothing from outside its folder,
   * and this is the one dialect the server reads.
   */
  function parseCsv(text) {
    const table = [];
    let row = [];
    let field = "";
    let state = "start"; // start | field | quoted | quote
    const endField = () => {
      row.push(field);
      field = "";
    };
    const endRow = () => {
      if (row.length) table.push(row);
      row = [];
    };
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (state === "quoted") {
        if (ch === '"') state = "quote";
        else field += ch;
        continue;
      }
      if (state === "quote") {
        if (ch === '"') {
          field += '"';
          state = "quoted";
          continue;
        }
        state = "field";
      }
      if (ch === ",") {
        endField();
        state = "start";
      } else if (ch === "\n" || ch === "\r") {
        if (ch === "\r" && i + 1 < text.length && text[i + 1] !== "\n") {
          // Python reads the text line by line ("\n"): a lone "\r" inside a line is an error.
          const line = text.slice(0, i).split("\n").length;
          fail(
            "malformed",
            `not valid CSV at line ${line}: new-line character seen in unquoted field - ` +
              "do you need to open the file in universal-newline mode?",
          );
        }
        if (state !== "start" || row.length) endField();
        endRow();
        if (ch === "\r" && text[i + 1] === "\n") i += 1;
        state = "start";
      } else if (ch === '"' && state === "start") {
        state = "quoted";
      } else {
        field += ch;
        state = "field";
      }
    }
    // Text ending inside quotes ends the field there (Python's reader is not strict).
    if (state !== "start" || row.length) endField();
    endRow();
    return table;
  }

  const JSON_NUMBER = /^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;
  const TRUE = new Set(["true", "True", "TRUE"]);
  const FALSE = new Set(["false", "False", "FALSE"]);

  function csvNumber(text) {
    if (text === "") return null;
    return JSON_NUMBER.test(text) ? Number(text) : text;
  }

  /** A column's text fields as the JSON values they stand for, by the column's kind. */
  function csvValues(column, texts) {
    const numeric =
      column.kind === "numeric" ||
      (column.kind === "categorical" && (column.recorded === "integer" || column.recorded === "float"));
    if (numeric) return texts.map(csvNumber);
    if (column.boolean) {
      return texts.map((t) => (TRUE.has(t) ? true : FALSE.has(t) ? false : t || null));
    }
    return texts.map((t) => t || null);
  }

  /** modelyard.contract.json.decode_rows with CSV fields: a header, then rows of text. */
  function decodeTable(header, data, contract, widthHint) {
    checkWidth(header.length, contract, "columns");
    if (new Set(header).size !== header.length) {
      const counts = new Map();
      header.forEach((name) => counts.set(name, (counts.get(name) || 0) + 1));
      const twice = [...counts].filter(([, n]) => n > 1).map(([name]) => name);
      twice.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      let shown = twice.slice(0, 10).map(show).join(", ");
      if (twice.length > 10) shown += `, ... (${twice.length} in all)`;
      fail("malformed", `columns ${shown} are named more than once`);
    }
    const rows = checkCount(data.length, contract);
    const width = header.length;
    const problems = new Problems();
    data.forEach((values, row) => {
      if (values.length !== width) {
        problems.add(row, null, "malformed", `has ${values.length} values, expected ${width} (${widthHint})`);
      }
    });
    problems.check();
    const position = new Map(header.map((name, index) => [name, index]));
    const lookup = (column) => {
      const index = position.get(column.name);
      if (index === undefined) return null;
      return csvValues(column, data.map((values) => values[index]));
    };
    return { decoded: assemble(contract, lookup, header, problems, rows), rows };
  }

  function decodeCsv(text, contract) {
    if (text.startsWith("\ufeff")) text = text.slice(1);
    const table = parseCsv(text);
    if (table.length > contract.max_rows + 1) {
      fail("too_many_rows", `more than the ${contract.max_rows} rows allowed per request`);
    }
    if (!table.length) {
      fail("empty", "the CSV text is empty; send a header row, then one line per row");
    }
    return decodeTable(table[0], table.slice(1), contract, "one per name in the header");
  }
