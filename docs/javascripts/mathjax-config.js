// MathJax 2 (served from the site, see docs/hooks.py): the docstrings' $…$ reach the page
// as \(…\) and \[…\] through pymdownx.arithmatex; the notebooks keep $…$.
window.MathJax = {
  tex2jax: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
  },
  // The package ships the STIX web fonts only (no TeX fonts, no image fonts).
  "HTML-CSS": { availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null },
  messageStyle: "none",
};
