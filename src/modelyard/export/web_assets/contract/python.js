  // One part of contract.js, which `modelyard export --target web` joins from
  // begin.js, python.js, rules.js, csv.js and end.js: the parts share one scope.
  // This part: how Python writes and compares text, for messages word for word.

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
