# Sphinx configuration of the documentation site; tools/build_docs.py copies it into the generated source
# tree as conf.py, next to site.json (the facts it needs from settings.ini).
import importlib.util, json, shutil
from pathlib import Path

_site = json.loads((Path(__file__).parent / "site.json").read_text())
project, author, copyright = _site["title"], _site["author"], _site["copyright"]

extensions = ["myst_nb", "sphinx.ext.mathjax"]
# MathJax 3 is served from the site itself: the files of the sphinx-mathjax-offline package are copied into
# _static/mathjax/ when the build ends (see setup below; its own extension would force a serial build).
mathjax_path = "mathjax/tex-chtml.js"
exclude_patterns = ["_nbs", "_build", "**.ipynb_checkpoints"]

# The notebooks' stored outputs are the content: nothing runs at docs time.
nb_execution_mode = "off"
nb_merge_streams = True
nb_render_markdown_format = "myst"          # show_doc entries are markdown with $math$
nb_code_prompt_show = "Show the exported {type}"
nb_code_prompt_hide = "Hide the exported {type}"
myst_enable_extensions = ["dollarmath", "amsmath", "attrs_block", "colon_fence"]
myst_all_links_external = True              # tools/build_docs.py already wrote every link as the final href
myst_dmath_double_inline = True
suppress_warnings = ["myst.header"]  # show_doc entries are ### headings inside cell outputs

html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_js_files = ["search_summaries.js"]
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
html_context = {"default_mode": "light"}    # an unset mode makes the theme log a console error on a first visit
html_sidebars = {"**": ["navbar-logo.html", "sbt-sidebar-nav.html"]}   # search lives in the header bar
html_theme_options = {
    "repository_url": _site["git_url"],
    "repository_branch": _site["branch"],
    "use_repository_button": False,         # a page must not need another host; the source is in the site
    "use_download_button": False,           # each page links its original notebook instead
    "use_fullscreen_button": False,
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "navigation_with_keys": False,
}


def _copy_mathjax(app, exc):
    if exc is not None: return
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None: raise RuntimeError("sphinx-mathjax-offline is not installed (pip install -e '.[dev]')")
    src = Path(spec.submodule_search_locations[0]) / "static" / "mathjax"
    shutil.copytree(src, Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True)


def setup(app):
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
