"""Turn a cloud bundle into a device inventory and a timeline, in the IoT analysers' shapes.

Inventory entries: ``{mac?, ips, hostname?, vendor?, names, serial?, model?, source, ...}``;
timeline entries: ``{time (UTC ISO), source, event, mac?, ip?, hostname?, serial?, detail}``.
Every reader is defensive: answers come from a hostile or half-broken world, so a missing or
odd field yields fewer facts, never an exception. Wi-Fi keys are never copied out.

Example::

    analysis = analyse_bundle(load_bundle(data))
    analysis["inventory"], analysis["timeline"]
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from assay.iot.cloud import jsonish
from assay.iot.mac import normalise_mac, vendor_of

_ROOMS = re.compile(r"^/locations/([^/]+)/rooms$")
_DETAIL = re.compile(r"^/devices/([^/]+)/(status|health)$")
_LIST_ITEMS = re.compile(r"^/api/namedLists/([^/]+)/items$")
_SECRET_KEYS = re.compile(r"psk|pre.?shared|password|passphrase|secret|token|key$", re.IGNORECASE)
_EPOCH_MS = 100_000_000_000
_YEAR_3000 = 32_503_680_000


@dataclass(frozen=True)
class InventoryLimits:
    """Bounds of the analysis: inventory entries, timeline entries, nodes walked in nested answers."""

    max_inventory: int = 5_000
    max_timeline: int = 20_000
    max_walk: int = 200_000
    max_text: int = 500


def iso_time(value: Any) -> str | None:
    """UTC ISO 8601 of epoch seconds/milliseconds (number or digits) or an ISO string; else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, int | float):
        try:
            seconds = value / 1000 if abs(value) >= _EPOCH_MS else value
            if not 0 < seconds < _YEAR_3000:
                return None
            return datetime.fromtimestamp(seconds, UTC).isoformat()
        except (OverflowError, ValueError, OSError):
            return None
    if isinstance(value, str) and value.strip():
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat()
    return None


def _items(value: Any, *keys: str) -> list[dict[str, Any]]:
    """Dict items of an answer that is a list, or a dict holding one under one of ``keys``."""
    if isinstance(value, dict):
        value = next((value[k] for k in keys if isinstance(value.get(k), list)), [])
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(value: Any, limit: int) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text[:limit] if text else None


def _names(*values: Any) -> list[str]:
    out: list[str] = []
    for value in values:
        if isinstance(value, str) and value.strip() and value.strip() not in out:
            out.append(value.strip())
    return out


def _walk(value: Any, budget: list[int]) -> Iterator[dict[str, Any]]:
    """Every dict nested in ``value`` (JSON strings that hold JSON included), within ``budget[0]`` nodes."""
    stack = [value]
    while stack and budget[0] > 0:
        node = stack.pop()
        budget[0] -= 1
        if isinstance(node, str) and node[:1] in "{[" and len(node) < 16 * 1024 * 1024:
            stack.append(jsonish.loads_or_none(node))
        elif isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


class _Builder:
    """Collects entries under the limits and notes when one was reached."""

    def __init__(self, limits: InventoryLimits) -> None:
        self.limits = limits
        self.inventory: list[dict[str, Any]] = []
        self.timeline: list[dict[str, Any]] = []
        self.anomalies: list[str] = []
        self.extra: dict[str, Any] = {}

    def device(self, entry: dict[str, Any]) -> None:
        if len(self.inventory) >= self.limits.max_inventory:
            self._flag("inventory_limit_reached")
            return
        entry.setdefault("ips", [])
        self.inventory.append({k: v for k, v in entry.items() if v not in (None, "")})

    def event(self, time: Any, source: str, event: str, detail: Any, **fields: Any) -> None:
        moment = iso_time(time)
        if moment is None:
            return
        if len(self.timeline) >= self.limits.max_timeline:
            self._flag("timeline_limit_reached")
            return
        entry: dict[str, Any] = {"time": moment, "source": source, "event": event}
        entry.update({k: v for k, v in fields.items() if v not in (None, "", [])})
        entry["detail"] = _text(detail, self.limits.max_text) or ""
        self.timeline.append(entry)

    def _flag(self, anomaly: str) -> None:
        if anomaly not in self.anomalies:
            self.anomalies.append(anomaly)


# --- SmartThings --------------------------------------------------------------------------


def _st_rooms(responses: dict[str, Any]) -> dict[str, str]:
    rooms: dict[str, str] = {}
    for key, value in responses.items():
        if _ROOMS.match(key) or key == "/rooms":
            for room in _items(value, "items"):
                if room.get("roomId") and room.get("name"):
                    rooms[str(room["roomId"])] = str(room["name"])
    return rooms


def _st_device(device: dict[str, Any], rooms: dict[str, str], details: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ident = str(device.get("deviceId") or "")
    ocf = device.get("ocf") if isinstance(device.get("ocf"), dict) else {}
    viper = device.get("viper") if isinstance(device.get("viper"), dict) else {}
    lan = device.get("lan") if isinstance(device.get("lan"), dict) else {}
    zigbee = device.get("zigbee") if isinstance(device.get("zigbee"), dict) else {}
    network_id = lan.get("networkId") or device.get("deviceNetworkId")
    mac = normalise_mac(str(network_id)) if network_id else None
    health = details.get(ident, {}).get("health") or device.get("healthState") or {}
    entry: dict[str, Any] = {
        "mac": mac,
        "names": _names(device.get("label"), device.get("name")),
        "vendor": device.get("manufacturerName")
        or ocf.get("manufacturerName")
        or viper.get("manufacturerName")
        or (vendor_of(mac) if mac else None),
        "model": ocf.get("modelNumber") or viper.get("modelName") or device.get("deviceTypeName"),
        "unique_id": viper.get("uniqueIdentifier"),
        "source": "smartthings",
        "device_id": ident or None,
        "type": device.get("type"),
        "location_id": device.get("locationId"),
        "room": rooms.get(str(device.get("roomId") or "")),
        "firmware": ocf.get("firmwareVersion") or viper.get("swVersion"),
        "zigbee_eui": zigbee.get("eui"),
        "health": health.get("state") if isinstance(health, dict) else None,
        "created": iso_time(device.get("createTime")),
    }
    capabilities = sorted(
        {
            str(cap.get("id"))
            for comp in _items(device.get("components"), "items")
            for cap in _items(comp.get("capabilities"), "items")
            if cap.get("id")
        }
    )
    if capabilities:
        entry["capabilities"] = capabilities
    return entry


def _st_details(responses: dict[str, Any]) -> dict[str, dict[str, Any]]:
    details: dict[str, dict[str, Any]] = {}
    for key, value in responses.items():
        match = _DETAIL.match(key)
        if match and isinstance(value, dict):
            details.setdefault(match.group(1), {})[match.group(2)] = value
    return details


def _smartthings(responses: dict[str, Any], out: _Builder) -> None:
    rooms = _st_rooms(responses)
    details = _st_details(responses)
    seen: set[str] = set()
    for device in _items(responses.get("/devices"), "items"):
        ident = str(device.get("deviceId") or "")
        if ident and ident in seen:
            continue
        seen.add(ident)
        entry = _st_device(device, rooms, details)
        out.device(entry)
        label = entry["names"][0] if entry["names"] else ident
        out.event(device.get("createTime"), "smartthings", "device_created", f"{label} added", device_id=ident)
        health = details.get(ident, {}).get("health") or device.get("healthState")
        if isinstance(health, dict):
            out.event(
                health.get("lastUpdatedDate"),
                "smartthings",
                "health",
                f"{label}: {health.get('state')}",
                device_id=ident,
            )
    for item in _items(responses.get("/history/devices"), "items"):
        _st_history(item, out)
    out.extra["locations"] = [
        {k: loc.get(k) for k in ("locationId", "name", "countryCode", "timeZoneId") if loc.get(k) is not None}
        for loc in _items(responses.get("/locations"), "items")
    ]
    out.extra["rooms"] = [{"room_id": k, "name": v} for k, v in rooms.items()]


def _st_history(item: dict[str, Any], out: _Builder) -> None:
    attribute = item.get("attribute")
    capability = item.get("capability")
    value = item.get("value")
    unit = item.get("unit")
    detail = item.get("text") or f"{attribute} = {value}{' ' + str(unit) if unit else ''}"
    event = ".".join(str(p) for p in (capability, attribute) if p) or "event"
    out.event(
        item.get("epoch") if item.get("epoch") is not None else item.get("time"),
        "smartthings",
        event,
        detail,
        device_id=item.get("deviceId"),
        device_name=item.get("deviceName"),
        location=item.get("locationName"),
        value=_text(value, out.limits.max_text),
    )


# --- Alexa --------------------------------------------------------------------------------


def _alexa_device(device: dict[str, Any]) -> dict[str, Any]:
    mac = normalise_mac(str(device.get("macAddress"))) if device.get("macAddress") else None
    return {
        "mac": mac,
        "names": _names(device.get("accountName")),
        "vendor": vendor_of(mac) if mac else None,
        "serial": device.get("serialNumber"),
        "model": device.get("deviceFamily"),
        "device_type": device.get("deviceType"),
        "software_version": _text(device.get("softwareVersion"), 100),
        "online": device.get("online"),
        "owner": device.get("deviceOwnerCustomerId"),
        "source": "alexa",
    }


def _appliances(responses: dict[str, Any], out: _Builder) -> None:
    budget = [out.limits.max_walk]
    seen: set[str] = set()
    for node in _walk(responses.get("/api/phoenix"), budget):
        ident = node.get("applianceId")
        if not isinstance(ident, str) or not node.get("friendlyName") or ident in seen:
            continue
        seen.add(ident)
        out.device(
            {
                "names": _names(node.get("friendlyName")),
                "vendor": _text(node.get("manufacturerName"), 200),
                "model": _text(node.get("modelName"), 200),
                "source": "alexa",
                "kind": "smart_home_appliance",
                "appliance_id": ident,
                "description": _text(node.get("friendlyDescription"), 200),
            }
        )
    if budget[0] <= 0:
        out.anomalies.append("walk_limit_reached")


def _summary_of(activity: dict[str, Any]) -> tuple[str | None, str | None]:
    """(what was said, what Alexa answered) of one activity."""
    description = activity.get("description")
    said = None
    parsed = jsonish.loads_or_none(description) if isinstance(description, str) else description
    if isinstance(parsed, dict):
        said = parsed.get("summary")
    elif isinstance(description, str):
        said = description
    answer = None
    domain = activity.get("domainAttributes")
    domain = jsonish.loads_or_none(domain) if isinstance(domain, str) else domain
    if isinstance(domain, dict):
        for best in _items(domain.get("nBestList")):
            answer = best.get("spokenAnswerText") or best.get("answerText")
            if answer:
                break
    return (said if isinstance(said, str) else None), (answer if isinstance(answer, str) else None)


def _recordings(attachments: list[dict[str, Any]]) -> dict[str, str]:
    return {str(a["activity_id"]): str(a.get("name")) for a in attachments if a.get("activity_id")}


def _activities(responses: dict[str, Any], out: _Builder, attachments: list[dict[str, Any]]) -> int:
    recordings = _recordings(attachments)
    seen: set[str] = set()
    count = 0
    for key, value in responses.items():
        if key.split("#")[0] != "/api/activities":
            continue
        for activity in _items(value, "activities"):
            ident = str(activity.get("id") or "")
            if ident and ident in seen:
                continue
            seen.add(ident)
            count += 1
            said, answer = _summary_of(activity)
            source_device = next(iter(_items(activity.get("sourceDeviceIds"))), {})
            status = activity.get("activityStatus")
            out.event(
                activity.get("creationTimestamp"),
                "alexa",
                "voice_activity",
                said or "",
                serial=source_device.get("serialNumber"),
                device_type=source_device.get("deviceType"),
                status=status,
                answer=_text(answer, out.limits.max_text),
                activity_id=ident or None,
                utterance_id=activity.get("utteranceId"),
                file=activity.get("_file"),
                recording=recordings.get(ident),
            )
    return count


def _history_records(responses: dict[str, Any], out: _Builder) -> int:
    """Privacy-portal voice history (``recordKey`` = ``customer#epoch-ms#deviceType#serial``)."""
    count = 0
    for record in _items(responses.get("customer-history-records"), "customerHistoryRecords", "records"):
        parts = str(record.get("recordKey") or "").split("#")
        texts = [
            str(item.get("transcriptText"))
            for item in _items(record.get("voiceHistoryRecordItems"))
            if item.get("transcriptText")
        ]
        count += 1
        out.event(
            record.get("timestamp") or (parts[1] if len(parts) > 1 else None),
            "alexa",
            "voice_record",
            " / ".join(texts),
            serial=parts[3] if len(parts) > 3 else None,
            device_type=parts[2] if len(parts) > 2 else None,
            record_key=record.get("recordKey"),
        )
    return count


def _alexa_events(responses: dict[str, Any], out: _Builder) -> None:
    for note in _items(responses.get("/api/notifications"), "notifications"):
        kind = str(note.get("type") or "notification").lower()
        detail = note.get("reminderLabel") or " ".join(
            str(note.get(k)) for k in ("originalDate", "originalTime") if note.get(k)
        )
        out.event(
            note.get("createdDate") or note.get("alarmTime"),
            "alexa",
            f"{kind}_set",
            detail,
            serial=note.get("deviceSerialNumber"),
            status=note.get("status"),
        )
    for card in _items(responses.get("/api/cards"), "cards"):
        device = card.get("sourceDevice") if isinstance(card.get("sourceDevice"), dict) else {}
        out.event(
            card.get("creationTimestamp"),
            "alexa",
            "card",
            card.get("title") or card.get("cardType"),
            serial=device.get("serialNumber"),
        )
    for todo in _items(responses.get("/api/todos"), "values"):
        out.event(todo.get("createdDate"), "alexa", "todo_created", todo.get("text"), status=todo.get("type"))
    for key, value in responses.items():
        if _LIST_ITEMS.match(key):
            for item in _items(value, "list", "values", "items"):
                out.event(
                    item.get("createdDateTime") or item.get("createdDate"),
                    "alexa",
                    "list_item_created",
                    item.get("value") or item.get("text"),
                )


def _alexa_account(responses: dict[str, Any]) -> dict[str, Any]:
    boot = responses.get("/api/bootstrap")
    auth = boot.get("authentication") if isinstance(boot, dict) else None
    account: dict[str, Any] = {}
    if isinstance(auth, dict):
        account = {k: auth.get(k) for k in ("customerName", "customerEmail", "customerId") if auth.get(k)}
    members = _items(responses.get("/api/household"), "accounts")
    if members:
        account["household"] = [{k: m.get(k) for k in ("fullName", "email", "role", "id") if m.get(k)} for m in members]
    return account


def _wifi(responses: dict[str, Any]) -> list[dict[str, Any]]:
    """Saved Wi-Fi networks without any key material."""
    out = []
    for config in _items(responses.get("/api/wifi/configs"), "values"):
        out.append({k: v for k, v in config.items() if not _SECRET_KEYS.search(k) and not isinstance(v, dict | list)})
    return out


def _devices_heard(out: _Builder) -> None:
    """Devices known only from the voice history: one entry per serial not already inventoried."""
    known = {str(e.get("serial")) for e in out.inventory if e.get("serial")}
    heard: dict[str, dict[str, Any]] = {}
    for event in out.timeline:
        serial = event.get("serial")
        if event["event"] not in ("voice_activity", "voice_record") or not serial or serial in known:
            continue
        entry = heard.setdefault(
            serial,
            {
                "names": [],
                "serial": serial,
                "device_type": event.get("device_type"),
                "source": "alexa",
                "seen_in": "voice history",
                "first_seen": event["time"],
                "last_seen": event["time"],
                "events": 0,
            },
        )
        entry["first_seen"] = min(entry["first_seen"], event["time"])
        entry["last_seen"] = max(entry["last_seen"], event["time"])
        entry["events"] += 1
    for entry in heard.values():
        out.device(entry)


def _alexa(responses: dict[str, Any], out: _Builder, attachments: list[dict[str, Any]]) -> None:
    for device in _items(responses.get("/api/devices-v2/device"), "devices"):
        out.device(_alexa_device(device))
    _appliances(responses, out)
    out.extra["activities"] = _activities(responses, out, attachments)
    out.extra["voice_records"] = _history_records(responses, out)
    _devices_heard(out)
    _alexa_events(responses, out)
    out.extra["account"] = _alexa_account(responses)
    out.extra["wifi"] = _wifi(responses)


def analyse_bundle(bundle: dict[str, Any], limits: InventoryLimits | None = None) -> dict[str, Any]:
    """``{"inventory", "timeline", "service", "counts", "anomalies", ...}`` of a loaded bundle."""
    out = _Builder(limits or InventoryLimits())
    responses = bundle.get("responses") if isinstance(bundle.get("responses"), dict) else {}
    service = str(bundle.get("service"))
    errors = [e for e in _items(bundle.get("errors"))]
    attachments = [a for a in _items(bundle.get("attachments"))]
    if service == "smartthings":
        _smartthings(responses, out)
    elif service == "alexa":
        _alexa(responses, out, attachments)
    out.timeline.sort(key=lambda e: (e["time"], e["event"]))
    counts = {
        "inventory": len(out.inventory),
        "timeline": len(out.timeline),
        "endpoints": len(responses),
        "errors": len(errors),
        "attachments": len(attachments),
    }
    counts.update({k: v for k, v in out.extra.items() if isinstance(v, int)})
    data: dict[str, Any] = {
        "service": service,
        "inventory": out.inventory,
        "timeline": out.timeline,
        "counts": counts,
        "errors": errors,
        "attachments": attachments,
        "anomalies": out.anomalies,
    }
    data.update({k: v for k, v in out.extra.items() if not isinstance(v, int)})
    return data
