"""Only job: ship ``hf_spectral_autoload.pth`` into site-packages (regular and editable installs), so that
``--optim dynmuon`` works in Hugging Face scripts without an import. Everything else is in pyproject.toml."""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_NAME = "hf_spectral_autoload.pth"
# site.py executes .pth lines that start with "import" at every interpreter start: keep it cheap, never raise.
PTH_LINE = (
    'import sys; exec("try:\\n import _hf_spectral_autoload as _m\\n _m.install()\\n'
    "except Exception as _e:\\n sys.stderr.write('hf_spectral autoload failed: %r\\\\n' % (_e,))\")\n"
)


class build_py_with_pth(build_py):
    def run(self):
        super().run()
        self._write_pth(self.build_lib)  # regular wheel: the build_lib root becomes site-packages
        if getattr(self, "editable_mode", False):  # PEP 660: the unpacked editable wheel's root
            self._write_pth(self.get_finalized_command("install").install_lib)

    def _write_pth(self, directory):
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, PTH_NAME), "w", encoding="utf-8") as f:
            f.write(PTH_LINE)

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH_NAME)]


setup(cmdclass={"build_py": build_py_with_pth})
