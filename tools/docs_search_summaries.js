// Search result summaries are cut from each page's text, which holds its formulas as TeX source (MathJax
// typesets them only on the page itself). Leave formulas out of the summaries instead of showing raw TeX.
(() => {
  const patch = () => {
    if (typeof Search === "undefined" || Search._mathFree) return;
    const htmlToText = Search.htmlToText;
    Search.htmlToText = (htmlString, anchor) => {
      const doc = new DOMParser().parseFromString(htmlString, "text/html");
      doc.querySelectorAll(".math").forEach((el) => el.replaceWith(doc.createTextNode("…")));
      return htmlToText(doc.documentElement.outerHTML, anchor);
    };
    Search._mathFree = true;
  };
  patch();
  document.addEventListener("DOMContentLoaded", patch);
})();
