from celery import shared_task
from django.db import OperationalError


@shared_task(
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def import_job_run(job_id: int) -> None:
    """Run one registry import. Safe to run twice: the service claims the job with a
    conditional UPDATE and a finished job is left as it is."""
    from .services.imports import import_job_run as run

    run(job_id=job_id)
