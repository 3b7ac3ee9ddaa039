from celery import shared_task

from . import health


@shared_task(ignore_result=True)
def beat_heartbeat() -> None:
    """Sent by beat every CHUNGTAY_BEAT_HEARTBEAT_SECONDS; /healthz reads the tick. Safe to re-run."""
    health.record_beat_tick()
