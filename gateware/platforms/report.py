"""nextpnr's JSON report (``--report``) reduced to the figures we publish: cells used of
each kind against the device, and Fmax per clock against its constraint."""

# nextpnr-ecp5 cell types → the names datasheets use
RESOURCES = {"TRELLIS_COMB": "LUT4", "TRELLIS_FF": "FF", "DP16KD": "DP16KD",
             "MULT18X18D": "DSP (MULT18X18D)", "TRELLIS_IO": "IO", "EHXPLLL": "PLL"}


def summarize(report: dict, **context) -> dict:
    """``{"resources": {name: {"used", "available"}}, "clocks": {net: {"fmax_mhz",
    "target_mhz", "met"}}, "timing_met": bool, **context}``."""
    used = report.get("utilization", {})
    resources = {RESOURCES[cell]: {"used": v["used"], "available": v["available"]}
                 for cell, v in used.items() if cell in RESOURCES}
    clocks = {}
    for net, f in report.get("fmax", {}).items():
        clocks[net] = {"fmax_mhz": round(f["achieved"], 2),
                       "target_mhz": round(f["constraint"], 2),
                       "met": f["achieved"] >= f["constraint"]}
    return {**context, "resources": resources, "clocks": clocks,
            "timing_met": all(c["met"] for c in clocks.values())}
