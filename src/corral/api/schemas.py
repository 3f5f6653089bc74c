"""Request and response bodies of the REST API (what the OpenAPI document describes)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
)

from corral.cluster.models import (
    MAX_VMID,
    MIN_VMID,
    Disk,
    NodeUsage,
    Placement,
    RunState,
    VMConfig,
    VMRuntime,
    check_name,
)
from corral.storage.spec import parse_disk_spec

# An image is a file in each host's image directory: a bare name, never a path.
IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _disk_spec(value: str) -> str:
    parse_disk_spec(value)  # raises ValueError with a readable reason
    return value


DiskSpec = Annotated[str, AfterValidator(_disk_spec)]


class VMCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vmid: int | None = Field(default=None, ge=MIN_VMID, le=MAX_VMID)
    name: str
    memory_mb: int = Field(
        ge=16, le=4 * 1024 * 1024, validation_alias=AliasChoices("memory_mb", "memory")
    )
    cores: int = Field(ge=1, le=256)
    disks: list[DiskSpec] = Field(default_factory=list, max_length=16)
    # None: the host the balancer's scoring picks (room, rules, then the most even cluster).
    node: str | None = None
    image: str | None = "tiny"
    append: str = Field(default="", max_length=1024)
    startup: int = Field(default=0, ge=0, le=9999)
    maintenance: Literal["migrate", "stay", "stop"] = "migrate"
    description: str = Field(default="", max_length=4096)
    balance: StrictBool = True  # False: the load balancer never moves it

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        if v is not None and (not IMAGE_RE.match(v) or ".." in v):
            raise ValueError("must be an image name (letters, digits, '.', '_', '-'), not a path")
        return v


class VMConfigChange(BaseModel):
    """Settings of an existing VM that change without a restart; those left out stay."""

    model_config = ConfigDict(extra="forbid")

    balance: StrictBool | None = None


class ShutdownParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(default=180.0, gt=0, le=24 * 3600)


class VMCreated(BaseModel):
    vmid: int
    task: str
    node: str


class TaskAccepted(BaseModel):
    task: str


class NodeOut(BaseModel):
    name: str
    online: bool
    cpus: int | None
    memory_mb: int | None
    accel: str | None
    address: str | None
    agent_url: str | None
    versions: dict[str, str]
    started_at: float | None
    usage: NodeUsage | None
    maintenance: bool
    vms: int
    vms_running: int


class VMOut(BaseModel):
    vmid: int
    name: str
    node: str
    state: RunState  # what the operator asked for
    status: str  # what the agent last observed, "unknown" without a report
    memory_mb: int
    cores: int
    disks: list[Disk]
    image: str | None
    startup: int
    description: str
    balance: bool = True  # False: the load balancer never moves it
    pid: int | None
    accel: str | None
    started_at: float | None
    message: str


class VMDetail(VMOut):
    config: VMConfig
    placement: Placement
    runtime: VMRuntime | None


class ConsoleChunk(BaseModel):
    model_config = ConfigDict(extra="allow")

    data: str
    offset: int


class Health(BaseModel):
    ok: bool
