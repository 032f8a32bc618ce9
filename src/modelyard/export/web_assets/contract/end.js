  window.modelyardContract = {
    ContractError,
    prepare,
    decodeRecords,
    decodeCsv,
    decodeTable,
  };
})();
