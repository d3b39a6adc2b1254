// fbtwist's free/busy page: show a busy cell's times when it is clicked,
// and go to the previous/next week with the arrow keys.
(function () {
  "use strict";
  var detail = document.getElementById("detail");
  document.addEventListener("click", function (event) {
    var cell = event.target.closest ? event.target.closest("td[title]") : null;
    if (!cell) { return; }
    var selected = document.querySelectorAll("td.selected");
    for (var i = 0; i < selected.length; i++) { selected[i].classList.remove("selected"); }
    cell.classList.add("selected");
    var table = cell.closest("table");
    detail.textContent = (table ? table.getAttribute("data-person") + ": " : "") + cell.getAttribute("title");
  });
  document.addEventListener("keydown", function (event) {
    if (event.target && /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName)) { return; }
    var link = null;
    if (event.key === "ArrowLeft") { link = document.getElementById("previous"); }
    if (event.key === "ArrowRight") { link = document.getElementById("next"); }
    if (link) { window.location.href = link.href; }
  });
  document.documentElement.setAttribute("data-ready", "1");
}());
