"""IoTInsight tasks on Assay's pipeline: a task is a submission, plus what IoTInsight adds around it.

The HTTP side lives in :mod:`assay.api.iotinsight`; this package holds the parts that do not need a
request: type detection by content (:mod:`.detect`), the allowed-roots checks for server paths
(:mod:`.paths`), a task's bytes into the file store (:mod:`.files`), the task rows and their
status (:mod:`.tasks`), a directory as a case (:mod:`.bulk`), account collection run outside the
request (:mod:`.accounts`), what a task's result and a case read back as (:mod:`.reports`), the
merge of a case's inventories and timelines (:mod:`.cases`) and the tables (:mod:`.models`).
"""
