// fbtwist's free/busy page: show a busy block's times next to it when it is
// clicked, and go to the previous/next week with the arrow keys.
(function () {
  "use strict";
  var detail = document.getElementById("detail");
  var selected = null;
  var MARGIN = 8, GAP = 6;

  function hide() {
    if (selected) { selected.classList.remove("selected"); }
    selected = null;
    detail.hidden = true;
  }

  // Beside the block (right, else left), else below or above it; always
  // inside the visible part of the page.
  function place(block) {
    detail.style.left = "0px";
    detail.style.top = "0px";
    var r = block.getBoundingClientRect();
    var width = detail.offsetWidth, height = detail.offsetHeight;
    var viewWidth = document.documentElement.clientWidth, viewHeight = document.documentElement.clientHeight;
    var left, top = r.top;
    if (r.right + GAP + width <= viewWidth - MARGIN) {
      left = r.right + GAP;
    } else if (r.left - GAP - width >= MARGIN) {
      left = r.left - GAP - width;
    } else {
      left = r.left;
      top = r.bottom + GAP + height <= viewHeight - MARGIN ? r.bottom + GAP : r.top - GAP - height;
    }
    left = Math.max(MARGIN, Math.min(left, viewWidth - MARGIN - width));
    top = Math.max(MARGIN, Math.min(top, viewHeight - MARGIN - height));
    detail.style.left = (left + window.pageXOffset) + "px";
    detail.style.top = (top + window.pageYOffset) + "px";
  }

  function show(block) {
    hide();
    selected = block;
    block.classList.add("selected");
    var table = block.closest("table");
    var who = document.createElement("strong");
    who.textContent = table ? table.getAttribute("data-person") : "";
    var when = document.createElement("span");
    when.textContent = block.getAttribute("title");
    detail.textContent = "";
    detail.appendChild(who);
    detail.appendChild(when);
    detail.hidden = false;
    // A block cut by the window's edge is brought wholly into view first.
    block.scrollIntoView({block: "nearest", inline: "nearest"});
    place(block);
  }

  document.addEventListener("click", function (event) {
    var block = event.target.closest ? event.target.closest("button.block") : null;
    if (block) {
      show(block);
    } else if (!detail.contains(event.target)) {
      hide();
    }
  });
  window.addEventListener("resize", function () { if (selected) { place(selected); } });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      var block = selected;
      hide();
      if (block) { block.focus(); }
      return;
    }
    if (event.target && /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName)) { return; }
    var link = null;
    if (event.key === "ArrowLeft") { link = document.getElementById("previous"); }
    if (event.key === "ArrowRight") { link = document.getElementById("next"); }
    if (link) { window.location.href = link.href; }
  });
  document.documentElement.setAttribute("data-ready", "1");
}());
