"""The use cases: an exam session and its outputs, replaying a recording, the live engine,
QA over an archive, the journal and its rescore, the demo."""
