/*
 * modelyard's input contract in the browser: the rules of modelyard.contract
 * (src/modelyard/contract/json.py, values.py, problems.py) and of the server's CSV
 * reading (serving/protocols/_parse.py), driven by contract.json, with the server's
 * messages word for word. A test runs the same cases through both.
 *
 *   const {prepare, decodeRecords} = window.modelyardContract;
 *   decodeRecords(rows, prepare(document.contract))   // throws a ContractError
 *
 * Numbers follow JSON: a JS number that is a whole number below 1e21 is what JSON
 * writes as an integer, others are floats; so the texts of categories and the values
 * shown in messages are those the server makes of JSON.stringify(rows).
 */
(function () {
  "use strict";
  "use strict";

  const LISTED = 50;
  const ABSENT = Symbol("absent");
  const NAT = -(2n ** 63n);
  const ISO = "an ISO-8601 date such as '2024-05-31' or '2024-05-31T12:00:00Z'";
  const LONGEST_DATE = 64;
  // datetime64[ns] spans 1677-09-22 to 2262-04-11 (as Python's check does).
  const EARLIEST = Date.UTC(1677, 8, 22);
  const LATEST = Date.UTC(2262, 3, 11);

  // -- Python's text forms (the messages quote values as the server's Python does) ----

  const NOT_PRINTABLE = /[\p{C}\p{Zl}\p{Zp}\p{Zs}]/u;
  const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

  function hex(code, width) {
    return code.toString(16).padStart(width, "0");
  }

  function escapeCode(code) {
    if (code <= 0xff) return "\\x" + hex(code, 2);
    if (code <= 0xffff) return "\\u" + hex(code, 4);
    return "\\U" + hex(code, 8);
  }

  /** Python's repr() of a str (asciiOnly: ascii()). */
  function pyRepr(text, asciiOnly) {
    const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
    let out = quote;
    for (const ch of text) {
      const code = ch.codePointAt(0);
      if (ch === quote || ch === "\\") out += "\\" + ch;
      else if (ch === "\n") out += "\\n";
      else if (ch === "\r") out += "\\r";
      else if (ch === "\t") out += "\\t";
      else if (code < 0x20 || code === 0x7f) out += escapeCode(code);
      else if (code < 0x7f) out += ch;
      else if (asciiOnly || (ch !== " " && NOT_PRINTABLE.test(ch))) out += escapeCode(code);
      else out += ch;
    }
    return out + quote;
  }

  /** Python's repr() of a float: the shortest round-trip digits, Python's layout. */
  function pyFloat(value) {
    if (Number.isNaN(value)) return "nan";
    if (!Number.isFinite(value)) return value > 0 ? "inf" : "-inf";
    if (value === 0) return Object.is(value, -0) ? "-0.0" : "0.0";
    const [mantissa, exponentText] = Math.abs(value).toExponential().split("e");
    const exponent = Number(exponentText);
    const digits = mantissa.replace(".", "");
    const sign = value < 0 ? "-" : "";
    if (exponent >= -4 && exponent < 16) {
      if (exponent < 0) return sign + "0." + "0".repeat(-exponent - 1) + digits;
      const whole = digits.padEnd(exponent + 1, "0");
      const fraction = digits.slice(exponent + 1) || "0";
      return sign + whole.slice(0, exponent + 1) + "." + fraction;
    }
    const shown = digits.length > 1 ? digits[0] + "." + digits.slice(1) : digits;
    const expSign = exponent < 0 ? "-" : "+";
    return sign + shown + "e" + expSign + String(Math.abs(exponent)).padStart(2, "0");
  }

  /** A JS number as the server's Python sees it once sent as JSON: an int or a float. */
  function jsonInteger(value) {
    return Number.isInteger(value) && Math.abs(value) < 1e21;
  }

  function pyNumber(value) {
    return jsonInteger(value) ? BigInt(value).toString() : pyFloat(value);
  }

  /** Python's format(value, "g"): six significant digits. */
  function pyG(value) {
    if (Number.isNaN(value)) return "nan";
    if (!Number.isFinite(value)) return value > 0 ? "inf" : "-inf";
    if (value === 0) return Object.is(value, -0) ? "-0" : "0";
    const [mantissa, exponentText] = value.toExponential(5).split("e");
    const exponent = Number(exponentText);
    const strip = (text) => (text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text);
    if (exponent >= -4 && exponent < 6) return strip(value.toFixed(5 - exponent));
    const expSign = exponent < 0 ? "-" : "+";
    return strip(mantissa) + "e" + expSign + String(Math.abs(exponent)).padStart(2, "0");
  }

  function grouped(count) {
    return count.toLocaleString("en-US");
  }

  function codePoints(text) {
    return Array.from(text);
  }

  /** modelyard.contract.problems.show: a short form of a value for a message. */
  function show(value) {
    if (value === null || value === undefined || value === ABSENT) return "null";
    if (typeof value === "boolean") return value ? "true" : "false";
    if (typeof value === "string") {
      const points = codePoints(value);
      const shown = points.length <= 40 ? value : points.slice(0, 37).join("") + "...";
      return pyRepr(shown, LONE_SURROGATE.test(shown));
    }
    if (Array.isArray(value)) return "a list";
    if (typeof value === "object") return "an object";
    if (typeof value === "number") return pyNumber(value).slice(0, 40);
    return String(value).slice(0, 40);
  }

  /** modelyard.contract.text.category_text for what JSON carries. */
  function categoryText(value) {
    if (typeof value === "string") return value;
    if (typeof value === "boolean") return value ? "True" : "False";
    if (Number.isNaN(value)) return null;
    return pyNumber(value);
  }

  // Python's float() accepts these texts (underscores between digits, inf, nan).
  const DIGITS = "[0-9](?:_?[0-9])*";
  const PY_FLOAT = new RegExp(
    `^[+-]?(?:(?:${DIGITS}(?:\\.(?:${DIGITS})?)?|\\.${DIGITS})(?:[eE][+-]?${DIGITS})?` +
      "|inf|infinity|nan)$",
    "i",
  );

  function pyFloatParses(text) {
    return PY_FLOAT.test(text.trim());
  }

  // -- problems (modelyard.contract.problems.Problems) --------------------------------

  class Problems {
    constructor() {
      this.listed = [];
      this.total = 0;
    }

    add(row, column, kind, detail) {
      this.total += 1;
      if (this.listed.length < LISTED) {
        const where = [];
        if (row !== null) where.push(`row ${row}`);
        if (column !== null) where.push(`column ${pyRepr(column)}`);
        const message = where.length ? `${where.join(", ")}: ${detail}` : detail;
        this.listed.push({ row, column, kind, message });
      }
    }

    check() {
      if (this.total) throw new ContractError(this.listed, this.total);
    }
  }

  /** The request does not fit the model's inputs: the server's 422, in the browser. */
  class ContractError extends Error {
    constructor(problems, total) {
      const count = Math.max(total || 0, problems.length);
      let counted = `${count} problem${count !== 1 ? "s" : ""}`;
      if (count > problems.length) counted += `, the first ${problems.length} listed`;
      const lines = [`the request does not fit the model's inputs (${counted}):`];
      for (const problem of problems) lines.push(`  ${problem.message}`);
      super(lines.join("\n"));
      this.name = "ContractError";
      this.problems = problems;
      this.total = count;
    }
  }

  function fail(kind, detail) {
    const problems = new Problems();
    problems.add(null, null, kind, detail);
    problems.check();
  }

  // -- close matches (Python's difflib.get_close_matches, n=2, cutoff 0.6) -------------
  // Ported so a missing column's "did you mean" is the server's: names are short, so
  // difflib's automatic junk heuristic (for sequences of 200 or more) never applies.

  function longestMatch(a, b, alo, ahi, blo, bhi, b2j) {
    let besti = alo;
    let bestj = blo;
    let bestsize = 0;
    let j2len = new Map();
    for (let i = alo; i < ahi; i++) {
      const next = new Map();
      for (const j of b2j.get(a[i]) || []) {
        if (j < blo) continue;
        if (j >= bhi) break;
        const k = (j2len.get(j - 1) || 0) + 1;
        next.set(j, k);
        if (k > bestsize) {
          besti = i - k + 1;
          bestj = j - k + 1;
          bestsize = k;
        }
      }
      j2len = next;
    }
    return [besti, bestj, bestsize];
  }

  function ratio(a, b) {
    const b2j = new Map();
    b.forEach((item, index) => {
      if (!b2j.has(item)) b2j.set(item, []);
      b2j.get(item).push(index);
    });
    let matches = 0;
    const queue = [[0, a.length, 0, b.length]];
    while (queue.length) {
      const [alo, ahi, blo, bhi] = queue.pop();
      const [i, j, k] = longestMatch(a, b, alo, ahi, blo, bhi, b2j);
      if (k) {
        matches += k;
        if (alo < i && blo < j) queue.push([alo, i, blo, j]);
        if (i + k < ahi && j + k < bhi) queue.push([i + k, ahi, j + k, bhi]);
      }
    }
    const total = a.length + b.length;
    return total ? (2 * matches) / total : 1;
  }

  function closeMatches(word, possibilities) {
    const target = codePoints(word);
    const scored = [];
    for (const candidate of possibilities) {
      const score = ratio(codePoints(candidate), target);
      if (score >= 0.6) scored.push([score, candidate]);
    }
    // heapq.nlargest on (score, text): the higher score first, then the larger text.
    scored.sort((x, y) => y[0] - x[0] || (x[1] < y[1] ? 1 : x[1] > y[1] ? -1 : 0));
    return scored.slice(0, 2).map((item) => item[1]);
  }

  function suggestion(name, given, contract) {
    const others = given.filter((n) => typeof n === "string" && !contract.byName.has(n));
    const close = closeMatches(name, others.slice(0, 100));
    return close.length ? `; did you mean ${close.map(show).join(" or ")}?` : "";
  }

  // -- one column's values (modelyard.contract.values) --------------------------------

  function empty(column, row, value, problems) {
    if (value === ABSENT) {
      const detail = "missing from this row; every row needs every input column";
      problems.add(row, column.name, "missing_column", detail);
    } else if (!column.nullable) {
      const detail = "null, but training had no missing values here; send a value";
      problems.add(row, column.name, "null_value", detail);
    }
  }

  function invalidText(column, row, value, problems) {
    const detail =
      `text ${show(value)} holds a lone UTF-16 surrogate, which is not a Unicode ` +
      "character; send valid UTF-8 text";
    problems.add(row, column.name, "invalid_text", detail);
  }

  function isMissing(value) {
    return value === null || value === undefined || value === ABSENT || Number.isNaN(value);
  }

  function number(column, row, value, problems) {
    if (typeof value === "number" && Number.isFinite(value)) return value;
    if (isMissing(value)) {
      empty(column, row, value === ABSENT ? ABSENT : null, problems);
      return NaN;
    }
    let hint = "";
    if (typeof value === "boolean") {
      if (column.boolean) return Number(value);
      hint = " (JSON booleans are not numbers)";
    } else if (typeof value === "string") {
      if (LONE_SURROGATE.test(value)) {
        invalidText(column, row, value, problems);
        return NaN;
      }
      if (pyFloatParses(value)) hint = " (text: send numbers without quotes)";
    }
    const expected = typeof value === "number" ? "a finite 64-bit number" : "a number";
    problems.add(row, column.name, "wrong_type", `expected ${expected}, found ${show(value)}${hint}`);
    return NaN;
  }

  function knownList(known) {
    const listed = known.sorted;
    let shown = listed.slice(0, 10).map((text) => pyRepr(text)).join(", ") || "none";
    if (listed.length > 10) shown += `, ... (${listed.length} in all)`;
    return shown;
  }

  function category(column, row, value, problems, known) {
    let text;
    if (typeof value === "string") {
      const length = codePoints(value).length;
      if (length > column.max_length) {
        const detail =
          `text of ${grouped(length)} characters, longer than the ` +
          `${grouped(column.max_length)} allowed here; send the category as it was in training`;
        problems.add(row, column.name, "text_too_long", detail);
        return null;
      }
      if (LONE_SURROGATE.test(value)) {
        invalidText(column, row, value, problems);
        return null;
      }
      text = value;
    } else if (isMissing(value)) {
      empty(column, row, value === ABSENT ? ABSENT : null, problems);
      return null;
    } else if (typeof value === "boolean") {
      if (!column.boolean) {
        const detail = `expected text, found ${show(value)}; training had no true/false values here`;
        problems.add(row, column.name, "wrong_type", detail);
        return null;
      }
      text = value ? "True" : "False";
    } else if (typeof value === "number") {
      if (column.recorded === "boolean") {
        problems.add(row, column.name, "wrong_type", `expected true or false, found ${show(value)}`);
        return null;
      }
      text = categoryText(value);
    } else {
      problems.add(row, column.name, "wrong_type", `expected text or a number, found ${show(value)}`);
      return null;
    }
    if (known && !known.set.has(text)) {
      const detail = `${show(text)} was never seen in training; known: ${knownList(known)}`;
      problems.add(row, column.name, "unseen_category", detail);
    }
    return text;
  }

  // ISO-8601 as Python's datetime.fromisoformat reads its common forms: a date, then
  // optionally any one separator and a time (hours, minutes, seconds, a fraction cut to
  // microseconds) and an offset. Week dates and the basic date form are not read here.
  const ISO_DATE = new RegExp(
    "^(\\d{4})-(\\d{2})-(\\d{2})" +
      "(?:[^0-9](\\d{2})(?::?(\\d{2})(?::?(\\d{2})(?:[.,](\\d+))?)?)?" +
      "(Z|[+-]\\d{2}(?::?\\d{2}(?::?\\d{2}(?:\\.\\d{1,6})?)?)?)?)?$",
  );

  function parseIso(text) {
    const match = ISO_DATE.exec(text);
    if (!match) return null;
    const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
    const [hour, minute, second] = [4, 5, 6].map((i) => Number(match[i] || 0));
    const fraction = (match[7] || "").slice(0, 6).padEnd(6, "0");
    if (year < 1 || hour > 23 || minute > 59 || second > 59) return null;
    const stamp = new Date(0);
    stamp.setUTCFullYear(year, month - 1, day);
    if (stamp.getUTCMonth() !== month - 1 || stamp.getUTCDate() !== day) return null;
    stamp.setUTCHours(hour, minute, second, 0);
    let micros = BigInt(stamp.getTime()) * 1000n + BigInt(fraction);
    const offset = match[8];
    if (offset && offset !== "Z") {
      const digits = offset.slice(1).replace(/:/g, "");
      const [oh, om, os] = [digits.slice(0, 2), digits.slice(2, 4), digits.slice(4, 6)].map(
        (part) => Number(part || 0),
      );
      const frac = offset.includes(".") ? offset.split(".")[1].padEnd(6, "0") : "0";
      if (oh > 23 || om > 59 || os > 59) return null;
      const shift = BigInt(((oh * 60 + om) * 60 + os) * 1e6) + BigInt(frac);
      micros += offset[0] === "+" ? -shift : shift;
    }
    return micros;
  }

  function datetime(column, row, value, problems) {
    if (isMissing(value)) {
      empty(column, row, value === ABSENT ? ABSENT : null, problems);
      return NAT;
    }
    let reason = "";
    if (typeof value === "string") {
      if (LONE_SURROGATE.test(value)) {
        invalidText(column, row, value, problems);
        return NAT;
      }
      const micros = codePoints(value).length > LONGEST_DATE ? null : parseIso(value);
      if (micros === null) {
        reason = " (not ISO-8601)";
      } else if (micros >= BigInt(EARLIEST) * 1000n && micros <= BigInt(LATEST) * 1000n) {
        return micros * 1000n;
      } else {
        reason = " (outside the years 1678 to 2261)";
      }
    }
    problems.add(row, column.name, "wrong_type", `expected ${ISO}, found ${show(value)}${reason}`);
    return NAT;
  }

  function decodeColumn(column, values, problems, contract) {
    if (column.kind === "numeric") return values.map((v, row) => number(column, row, v, problems));
    if (column.kind === "categorical") {
      const known = contract.reject_unseen ? column.known : null;
      return values.map((v, row) => category(column, row, v, problems, known));
    }
    return values.map((v, row) => datetime(column, row, v, problems));
  }

  function checkRanges(contract, decoded, rows, problems) {
    if (contract.ranges !== "refuse") return;
    const numeric = contract.columns.filter((c) => c.kind === "numeric");
    const bounds = numeric.map((c) => {
      if (c.min === null || c.max === null) return [-Infinity, Infinity];
      const span = c.max - c.min;
      return [c.min - contract.range_tolerance * span, c.max + contract.range_tolerance * span];
    });
    for (let row = 0; row < rows; row++) {
      numeric.forEach((column, position) => {
        const value = decoded.get(column.name)[row];
        const [low, high] = bounds[position];
        if (value < low || value > high) {
          const detail = `${pyG(value)} is outside the training range [${pyG(low)}, ${pyG(high)}]`;
          problems.add(row, column.name, "out_of_range", detail);
        }
      });
    }
  }

  /** modelyard.contract.json.assemble: each input column found, checked; the rest missing. */
  function assemble(contract, lookup, given, problems, rows) {
    const decoded = new Map();
    let suggested = 0;
    let complete = true;
    for (const column of contract.columns) {
      const values = lookup(column);
      if (values === null) {
        let hint = "";
        if (suggested < 10) {
          suggested += 1;
          hint = suggestion(column.name, given, contract);
        }
        problems.add(null, column.name, "missing_column", `missing${hint}`);
        if (column.kind === "numeric") complete = false;
      } else {
        decoded.set(column.name, decodeColumn(column, values, problems, contract));
      }
    }
    if (complete) checkRanges(contract, decoded, rows, problems);
    problems.check();
    return decoded;
  }

  function checkCount(rows, contract) {
    if (rows > contract.max_rows) {
      fail("too_many_rows", `${rows} rows, more than the ${contract.max_rows} allowed per request`);
    }
    if (rows === 0) fail("empty", "the request has no rows");
    return rows;
  }

  function checkWidth(count, contract, what) {
    if (count > contract.max_columns) {
      fail(
        "too_many_columns",
        `${grouped(count)} ${what}, more than the ${grouped(contract.max_columns)} allowed per ` +
          `request; send only the model's ${contract.columns.length} inputs`,
      );
    }
  }

  function isRecord(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  /** modelyard.contract.json.decode_records: rows as objects {column: value}. */
  function decodeRecords(records, contract) {
    if (isRecord(records)) records = [records];
    if (!Array.isArray(records)) {
      fail("malformed", `expected a list of objects {column: value}, found ${show(records)}`);
    }
    const rows = checkCount(records.length, contract);
    const problems = new Problems();
    records.forEach((record, row) => {
      if (!isRecord(record)) {
        const detail = `expected an object {column: value}, found ${show(record)}`;
        problems.add(row, null, "malformed", detail);
      }
    });
    problems.check();
    checkWidth(Math.max(...records.map((r) => Object.keys(r).length)), contract, "keys in a row");
    const has = Object.prototype.hasOwnProperty;
    const lookup = (column) => {
      const values = records.map((r) => (has.call(r, column.name) ? r[column.name] : ABSENT));
      return values.every((v) => v === ABSENT) ? null : values;
    };
    return { decoded: assemble(contract, lookup, Object.keys(records[0]), problems, rows), rows };
  }

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

  /** Ready contract.json's contract for checking: category sets, columns by name. */
  function prepare(contract) {
    for (const column of contract.columns) {
      if (column.categories) {
        column.known = { set: new Set(column.categories), sorted: column.categories };
      }
    }
    contract.byName = new Map(contract.columns.map((c) => [c.name, c]));
    return contract;
  }

  window.modelyardContract = {
    ContractError,
    prepare,
    decodeRecords,
    decodeCsv,
    decodeTable,
  };
})();
