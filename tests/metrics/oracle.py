"""PySODMetrics (the community's reference implementation) as the test oracle."""

from __future__ import annotations

import warnings

import numpy as np


def reference(preds: list[np.ndarray], gts8: list[np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Return (per-image values, dataset values) computed by PySODMetrics 1.6 for uint8 maps and masks."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import py_sod_metrics as M

        s, mae, em, wf, fm = M.Smeasure(), M.MAE(), M.Emeasure(), M.WeightedFmeasure(), M.Fmeasure()
        for p, g in zip(preds, gts8):
            for m in (s, mae, em, wf, fm):
                m.step(p, g)
        per_image = {
            "S_alpha": np.array(s.sms, float),
            "MAE": np.array(mae.maes, float),
            "adp_E": np.array(em.adaptive_ems, float),
            "em_curve": np.array(em.changeable_ems, float),
            "weighted_F": np.array(wf.weighted_fms, float),
            "adp_F": np.array(fm.adaptive_fms, float),
            "fm_curve": np.array(fm.changeable_fms, float),
            "precision": np.array(fm.precisions, float),
            "recall": np.array(fm.recalls, float),
        }
        e, f = em.get_results()["em"], fm.get_results()["fm"]
        summary = {
            "S_alpha": s.get_results()["sm"],
            "MAE": mae.get_results()["mae"],
            "max_E": e["curve"].max(),
            "mean_E": e["curve"].mean(),
            "adp_E": e["adp"],
            "weighted_F": wf.get_results()["wfm"],
            "max_F": f["curve"].max(),
            "mean_F": f["curve"].mean(),
            "adp_F": f["adp"],
        }
    return per_image, summary
