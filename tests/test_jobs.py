"""The shared background-job registry: LocalAI's job status shape, errors kept in the job, cancellation."""

import threading

from localai.install.jobs import JobRegistry, human_size


def wait(job, timeout=5.0):
    done = threading.Event()
    for _ in range(int(timeout * 100)):
        if job.processed:
            return job
        done.wait(0.01)
    raise AssertionError(f"job {job.uuid} did not finish")


def test_completed_job_reports_localai_fields_and_result():
    jobs = JobRegistry()

    def work(job):
        job.update(file_name="m.gguf", file_size=2_000_000, downloaded_size=1_000_000, progress=50.0)
        return "ok"

    job = wait(jobs.submit("model", "gemma", work))
    d = job.to_dict()
    assert d["processed"] is True and d["error"] is None and d["progress"] == 100.0
    assert d["message"] == "completed" and d["gallery_element_name"] == "gemma"
    assert d["file_name"] == "m.gguf" and d["file_size"] == "2.0 MB" and d["downloaded_size"] == "1.0 MB"
    assert job.result == "ok" and jobs.get(job.uuid) is job and jobs.list("model") == [job] and jobs.list("backend") == []


def test_failure_is_kept_in_the_job():
    job = wait(JobRegistry().submit("backend", "x", lambda job: 1 / 0))
    assert job.processed and "division by zero" in job.error and job.message.startswith("error")


def test_cancel_stops_work_at_its_next_check():
    started, release = threading.Event(), threading.Event()

    def work(job):
        started.set()
        release.wait(5)
        job.check_cancelled()
        raise AssertionError("work went on after cancel")

    jobs = JobRegistry()
    job = jobs.submit("model", "m", work)
    started.wait(5)
    assert job.cancel() is True
    release.set()
    wait(job)
    assert job.cancelled and job.to_dict()["cancelled"] is True and job.error and "cancelled" in job.error
    assert job.cancel() is False  # already finished


def test_human_size():
    assert human_size(None) == "" and human_size(999) == "999 B" and human_size(1_500) == "1.5 KB"
