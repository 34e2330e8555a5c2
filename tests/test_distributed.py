"""tf.distribute gives the same model as one device (run in a fresh process: devices are fixed
when TensorFlow starts)."""

import json
import subprocess
import sys

SCRIPT = r"""
import json, numpy as np
from recsys_helpers.models import distributed as scaling
from recsys_helpers.datasets import retail as data, synthetic
devices = scaling.split_cpu(2)
import tensorflow as tf
tf.config.experimental.enable_op_determinism()
split = data.time_split(data.clean_retail(synthetic.make_retail(n_customers=120, n_items=40, seed=2)))
one = scaling.fit_mf(split, epochs=2, factors=8)
two = scaling.fit_mf(split, tf.distribute.MirroredStrategy([d.name for d in devices]), epochs=2, factors=8)
print(json.dumps({
    "devices": len(devices), "replicas": two.replicas,
    "max_diff": float(max(np.abs(getattr(one, k) - getattr(two, k)).max() for k in ("customer_factors_", "item_factors_", "item_bias_"))),
    "score_corr": float(np.corrcoef(one.scores(np.arange(10)).ravel(), two.scores(np.arange(10)).ravel())[0, 1]),
    "moved": float(np.abs(one.item_bias_).max()),
}))
"""


def test_mirrored_strategy_matches_single_device():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2 and out["replicas"] == 2
    assert out["moved"] > 0
    # Same batches, same start: only the order of floating-point sums differs between the two
    # replicas' gradients, which Adam's per-weight normalisation can amplify to ~1e-3 per weight.
    assert out["max_diff"] < 0.01
    assert out["score_corr"] > 0.999
