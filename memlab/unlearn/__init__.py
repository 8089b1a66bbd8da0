"""Machine unlearning: the method table (:mod:`.methods`), one file per method (or per method
family), what they share (:mod:`.common`, :mod:`.neurons`), and the runner (``run(cfg)``)."""
