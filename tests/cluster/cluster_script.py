"""deploy/local/cluster as a module, so the tests read HAProxy's and Sentinel's state with the
script's own helpers rather than copies of them."""
import importlib.machinery
import importlib.util
import os

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "deploy", "local", "cluster")

_loader = importlib.machinery.SourceFileLoader("payd_local_cluster", PATH)
_spec = importlib.util.spec_from_loader(_loader.name, _loader)
cl = importlib.util.module_from_spec(_spec)
_loader.exec_module(cl)
