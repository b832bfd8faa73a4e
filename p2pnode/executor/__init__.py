"""The executor: a deal's task in a locked-down container (docs/executor.md)."""

from p2pnode.executor.engine import Engine, EngineError, EngineUnavailable, engine_address
from p2pnode.executor.executor import (
    DealTask,
    Executor,
    ExecutorSettings,
    TaskOutcome,
    TaskRefused,
    TaskStartError,
)
from p2pnode.executor.limits import SlotLimits, container_options, gpu_device_requests
from p2pnode.executor.receipt import Receipt, ReceiptError, verify_receipt
from p2pnode.executor.spec import InputFile, TaskSpec, TaskSpecError, load_task_spec

__all__ = [
    "DealTask",
    "Engine",
    "EngineError",
    "EngineUnavailable",
    "Executor",
    "ExecutorSettings",
    "InputFile",
    "Receipt",
    "ReceiptError",
    "SlotLimits",
    "TaskOutcome",
    "TaskRefused",
    "TaskSpec",
    "TaskSpecError",
    "TaskStartError",
    "container_options",
    "engine_address",
    "gpu_device_requests",
    "load_task_spec",
    "verify_receipt",
]
