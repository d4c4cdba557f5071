// personaminer report: sort tables by a click on a column title, filter the users table.
// It moves and hides existing rows only: it never writes HTML (the rows hold text from logs).
"use strict";
(function () {
  document.documentElement.setAttribute("data-script", "on");  // the script ran (the CSP let it load)
  function cellValue(row, i, numeric) {
    var text = row.cells[i] ? row.cells[i].textContent.trim() : "";
    if (!numeric) return text.toLowerCase();
    var v = parseFloat(text.replace(/,/g, ""));
    return isNaN(v) ? -Infinity : v;
  }
  function sortBy(table, th, i) {
    var numeric = th.getAttribute("data-type") === "num";
    var asc = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, i, numeric), y = cellValue(b, i, numeric);
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    if (!table.tHead) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.addEventListener("click", function () { sortBy(table, th, i); });
    });
  });
  var filter = document.getElementById("filter");
  if (filter) {
    var table = document.getElementById(filter.getAttribute("data-table"));
    filter.addEventListener("input", function () {
      var q = filter.value.trim().toLowerCase();
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        r.hidden = q !== "" && r.cells[0].textContent.toLowerCase().indexOf(q) < 0;
      });
    });
  }
})();
