"""TAO stage jobs. One entry point per stage: ``python -m tao_jobs <stage> --spec <uri>``."""

__version__ = "0.1.0"
