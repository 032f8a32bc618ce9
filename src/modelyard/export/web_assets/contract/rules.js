  // One part of contract.js, which `modelyard export --target web` joins from
  // begin.js, python.js, rules.js, csv.js and end.js: the parts share one scope.
  // This part: the contract's rules: problems, each column's values, rows as JSON records.

  const LISTED = 50;
  const ABSENT = Symbol("absent");
  const NAT = -(2n ** 63n);
  const ISO = "an ISO-8601 date such as '2024-05-31' or '2024-05-31T12:00:00Z'";
  const LONGEST_DATE = 64;
  // datetime64[ns] spans 1677-09-22 to 2262-04-11 (as Python's check does).
  const EARLIEST = Date.UTC(1677, 8, 22);
  const LATEST = Date.UTC(2262, 3, 11);

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
