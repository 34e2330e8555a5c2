// A table wider than the page's column (a wide DataFrame, long identifiers in its cells) gets
// the class book-squeeze, whose cells may break anywhere (_static/book.css), so that it fits
// the column instead of scrolling sideways; a table that fits keeps its words whole.
function bookSqueezeTables() {
  for (const table of document.querySelectorAll("article table")) {
    const box = table.parentElement;
    if (table.scrollWidth > box.clientWidth + 1) table.classList.add("book-squeeze");
  }
}
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", bookSqueezeTables);
} else {
  bookSqueezeTables();
}
