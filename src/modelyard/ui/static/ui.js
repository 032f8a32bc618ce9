// Refreshes the progress of the jobs on the page that have not ended; once the job of a
// job page ends, reloads it to show the results and downloads. Nothing else runs here.
"use strict";

function formatNumber(value) {
  if (value === null || value === undefined) return "–";
  return Math.round(value).toLocaleString("en-US");
}

function formatSeconds(value) {
  if (value === null || value === undefined) return "–";
  if (value < 90) return Math.round(value) + " s";
  if (value < 5400) return Math.round(value / 60) + " min";
  return (value / 3600).toFixed(1) + " h";
}

function show(element, job) {
  const fields = {
    status: job.status,
    percent: Math.floor(job.progress * 100) + "%",
    rows_done: formatNumber(job.rows_done),
    rows_failed: formatNumber(job.rows_failed),
    rows_per_second: formatNumber(job.rows_per_second),
    eta: formatSeconds(job.eta_seconds),
  };
  for (const [name, text] of Object.entries(fields)) {
    for (const cell of element.querySelectorAll(`[data-field="${name}"]`)) {
      cell.textContent = text;
      if (name === "status") cell.className = "status " + job.status;
    }
  }
  for (const bar of element.querySelectorAll("progress")) bar.value = job.progress;
  element.dataset.updates = String(Number(element.dataset.updates || "0") + 1);
}

async function follow(element) {
  while (element.dataset.finished === "false") {
    await new Promise((resolve) => setTimeout(resolve, 700));
    let job;
    try {
      const response = await fetch(element.dataset.progressUrl, { cache: "no-store" });
      if (!response.ok) continue;
      job = await response.json();
    } catch (error) {
      continue; // the server restarted or the network hiccuped: try again
    }
    show(element, job);
    if (job.finished) {
      element.dataset.finished = "true";
      if (element.dataset.reload === "true") window.location.reload();
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const element of document.querySelectorAll("[data-progress-url]")) follow(element);
  document.body.dataset.ready = "true";
});
