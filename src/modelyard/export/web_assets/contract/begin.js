/*
 * modelyard's input contract in the browser (joined at export from
 * web_assets/contract/: begin, python, rules, csv, end): the rules of modelyard.contract
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
