"""Prometheus metrics of the serving runtime (``GET /metrics``): one registry per app, so tests and
several apps in one process never share counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WAIT_BUCKETS = (0.001, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("voiceloop_requests", "requests by endpoint and HTTP status",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("voiceloop_request_seconds", "time to answer, by endpoint", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.bundle = Gauge("voiceloop_bundle_version", "bundle version served (0: none yet)", ["alias"],
                            registry=self.registry)
        self.reloads = Counter("voiceloop_bundle_reloads", "bundle swaps after an alias moved, by outcome",
                               ["alias", "outcome"], registry=self.registry)
        self.follower_errors = Counter("voiceloop_follower_errors", "failures of the alias follower, by alias and "
                                       "stage (locate, load, report: the swap's audit entry)", ["alias", "stage"],
                                       registry=self.registry)
        self.follower_healthy = Gauge("voiceloop_follower_healthy", "1 while the alias is followed with nothing "
                                      "failing, 0 until a poll succeeds again", ["alias"], registry=self.registry)
        self.request_audit_failures = Counter("voiceloop_request_audit_failures", "request audit batches that "
                                              "could not be written (kept and retried)", registry=self.registry)
        self.shadow = Counter("voiceloop_shadow_comparisons", "challenger runs on champion traffic, by endpoint "
                              "and whether the intents agreed", ["endpoint", "intent_agrees"], registry=self.registry)
        self.shadow_word_edits = Histogram("voiceloop_shadow_transcript_word_edits", "word edits between the "
                                           "champion's and the challenger's transcripts",
                                           buckets=(0, 1, 2, 3, 5, 8, 13, 21), registry=self.registry)
        self.sessions_open = Gauge("voiceloop_call_sessions_open", "call sessions held in memory for the handoff "
                                   "packet (serving/sessions.py)", registry=self.registry)
        self.sessions_closed = Counter("voiceloop_call_sessions_closed", "call sessions dropped, by reason: ended "
                                       "(DELETE), expired (no turn for serving.sessions.idle_s), evicted (room for "
                                       "a new call at serving.sessions.max_sessions)", ["reason"],
                                       registry=self.registry)
        self.session_turns = Counter("voiceloop_call_turns", "customer turns added to call sessions, by source "
                                     "(audio, text)", ["source"], registry=self.registry)

        # admission control (serving/admission.py): the slots for model work, the queue for them, what is shed
        self.admission_inflight = Gauge("voiceloop_admission_inflight", "requests holding a model slot now",
                                        registry=self.registry)
        self.admission_queued = Gauge("voiceloop_admission_queue_depth", "requests waiting for a model slot now",
                                      registry=self.registry)
        self.admission_max_inflight = Gauge("voiceloop_admission_max_inflight", "model slots of this process "
                                            "(serving.admission.max_inflight)", registry=self.registry)
        self.admission_max_queue = Gauge("voiceloop_admission_max_queue", "requests that may wait for a slot "
                                         "(serving.admission.max_queue)", registry=self.registry)
        self.admission_shed = Counter("voiceloop_admission_shed", "requests refused before any model work, by "
                                      "reason: queue_full, expected_wait, queue_timeout (503 + Retry-After), "
                                      "disconnected (the client left while it waited; 499)", ["reason"],
                                      registry=self.registry)
        self.admission_admitted = Counter("voiceloop_admission_admitted", "requests that reached the model, by "
                                          "work (transcribe, understand, process, turn)", ["work"],
                                          registry=self.registry)
        self.admission_wait = Histogram("voiceloop_admission_wait_seconds", "time an admitted request waited for "
                                        "its model slot", buckets=WAIT_BUCKETS, registry=self.registry)
        self.shadow_skipped = Counter("voiceloop_shadow_skipped", "challenger runs left out because no model "
                                      "slot was free (shadow work yields to traffic)",
                                      registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
