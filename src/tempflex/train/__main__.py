"""``python -m tempflex.train ARGS`` (e.g. under ``torchrun``) = ``tempflex train ARGS``.

Once the command has returned (model saved, process group closed) and the logs are flushed, the process leaves with
``os._exit``: under torchrun with gloo, about one run in ten otherwise died in interpreter teardown with SIGABRT
("terminate called without an active exception") after all its work was done, and torchrun reported the whole run
as failed. An exception still ends the process the usual way, with its traceback.
"""

import logging
import os
import sys

from tempflex.cli import main

code = main(["train", *sys.argv[1:]])
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
