// Sort a table.sortable by the column whose header is clicked (again: the other way). Numbers sort by value,
// text in natural order, empty cells last either way. Each cell sorts by its data-sort, else its text.
(() => {
  const keyOf = (cell) => {
    const text = (cell.dataset.sort ?? cell.textContent).trim();
    const number = /^[-+]?(\d|\.\d)/.test(text) ? parseFloat(text) : NaN;
    return { text, number };
  };
  const compare = (a, b) => (Number.isFinite(a.number) && Number.isFinite(b.number)
    ? a.number - b.number : a.text.localeCompare(b.text, undefined, { numeric: true }));
  for (const table of document.querySelectorAll("table.sortable")) {
    const headers = [...table.tHead.rows[0].cells];
    headers.forEach((header, column) => {
      const sort = () => {
        const ascending = header.getAttribute("aria-sort") !== "ascending";
        headers.forEach((other) => other.removeAttribute("aria-sort"));
        header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const body = table.tBodies[0];
        const keys = new Map([...body.rows].map((row) => [row, keyOf(row.cells[column])]));
        const rows = [...body.rows].sort((x, y) => {
          const a = keys.get(x), b = keys.get(y);
          if (!a.text || !b.text) return (!a.text) - (!b.text);
          return ascending ? compare(a, b) : compare(b, a);
        });
        body.append(...rows);
      };
      header.tabIndex = 0;
      header.title = "sort by this column";
      header.addEventListener("click", sort);
      header.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") sort(); });
    });
  }
})();
