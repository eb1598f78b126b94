"""nextpnr's JSON report (``--report``) reduced to the figures we publish: cells used of
each kind against the device, and Fmax per clock against its constraint."""

# nextpnr-ecp5 cell types → the names datasheets use
RESOURCES = {"TRELLIS_COMB": "LUT4", "TRELLIS_FF": "FF", "DP16KD": "DP16KD",
             "MULT18X18D": "DSP (MULT18X18D)", "TRELLIS_IO": "IO", "EHXPLLL": "PLL"}


def summarize(report: dict, **context) -> dict:
    """``{"resources": {name: {"used", "available"}}, "clocks": {net: {"fmax_mhz",
    "target_mhz", "met"}}, "timing_met": bool or None (no clock in the report),
    "critical_paths": [...], **context}``."""
    used = report.get("utilization", {})
    resources = {RESOURCES[cell]: {"used": v["used"], "available": v["available"]}
                 for cell, v in used.items() if cell in RESOURCES}
    clocks = {}
    for net, f in report.get("fmax", {}).items():
        clocks[net] = {"fmax_mhz": round(f["achieved"], 2),
                       "target_mhz": round(f["constraint"], 2),
                       "met": f["achieved"] >= f["constraint"]}
    return {**context, "resources": resources, "clocks": clocks,
            # None: no timing in the report (packing only)
            "timing_met": all(c["met"] for c in clocks.values()) if clocks else None,
            "critical_paths": [_path(p) for p in report.get("critical_paths", [])]}


def _path(path: dict) -> dict:
    """A critical path as where it starts and ends (cell names, which carry the
    gateware's hierarchy), its total delay, and the logic/routing split."""
    steps = path.get("path", [])
    delay = {kind: sum(s["delay"] for s in steps if s["type"] == kind)
             for kind in ("clk-to-q", "logic", "routing", "setup")}
    return {"from": path.get("from"), "to": path.get("to"),
            "start": steps[0]["from"]["cell"] if steps else None,
            "end": steps[-1]["to"]["cell"] if steps else None,
            "delay_ns": round(sum(delay.values()), 2),
            "logic_ns": round(delay["logic"] + delay["clk-to-q"] + delay["setup"], 2),
            "routing_ns": round(delay["routing"], 2),
            "levels": sum(s["type"] == "logic" for s in steps)}
