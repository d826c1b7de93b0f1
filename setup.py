"""Packaging for mdr_gcn_nb, read from settings.ini (nbdev's single source of truth).

Written without `pkg_resources` so it works with current setuptools. torch is a requirement but is
not pinned here: install it first (`pip install torch==2.13.0` gives the CPU build on this machine).
"""
from configparser import ConfigParser
from pathlib import Path

import setuptools

here = Path(__file__).parent
config = ConfigParser(delimiters=["="])
config.read(here / "settings.ini", encoding="utf-8")
cfg = config["DEFAULT"]

licenses = {"apache2": ("Apache Software License 2.0", "OSI Approved :: Apache Software License")}
lic = licenses[cfg["license"]]
statuses = ["1 - Planning", "2 - Pre-Alpha", "3 - Alpha", "4 - Beta", "5 - Production/Stable"]
requirements = ["torch"] + cfg.get("requirements", "").split()
dev_requirements = cfg.get("dev_requirements", "").split()
export_requirements = cfg.get("export_requirements", "").split()   # optional: `mdr-gcn export --format onnx`
tensorboard_requirements = cfg.get("tensorboard_requirements", "").split()   # optional: `log.tensorboard: true`
scripts = [s for s in cfg.get("console_scripts", "").split() if s]
readme = here / "README.md"

setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    description=cfg["description"],
    long_description=readme.read_text(encoding="utf-8") if readme.exists() else "",
    long_description_content_type="text/markdown",
    author=cfg["author"],
    author_email=cfg["author_email"],
    url=cfg["git_url"],
    license=lic[0],
    classifiers=[
        "Development Status :: " + statuses[int(cfg["status"])],
        "Intended Audience :: " + cfg["audience"].title(),
        "License :: " + lic[1],
        "Natural Language :: " + cfg["language"].title(),
        "Programming Language :: Python :: 3",
    ],
    keywords=cfg["keywords"],
    packages=setuptools.find_packages(include=[cfg["lib_name"], cfg["lib_name"] + ".*"]),
    include_package_data=True,
    install_requires=requirements,
    extras_require={"dev": dev_requirements, "export": export_requirements, "tensorboard": tensorboard_requirements},
    python_requires=">=" + cfg["min_python"],
    zip_safe=False,
    entry_points={
        "console_scripts": scripts,
        "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
    },
)
