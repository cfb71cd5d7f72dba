#!/usr/bin/env python3
"""check_onnx.py — the consumer check of tools/export_onnx (run by scripts/check_onnx.sh in its
virtualenv with onnx and onnxruntime from PyPI). An interoperability check: dfq itself has no Python.

  check_onnx.py DUMP_DIR --faithful F.onnx [--ort O.onnx --ort_ref_top1 X] [--trt T.onnx]
                [--float FLOAT.onnx] [--bench] [--tol 1e-4] [--top1_tol 0.2] [--json OUT]

DUMP_DIR holds what `export_onnx --dump` wrote: images.npy (preprocessed as dfq feeds them),
labels.npy and dfq_logits.npy (the dfq model's logits on them).
  - every file: onnx.checker.check_model(full_check=True);
  - faithful: ONNX Runtime with every graph optimisation off reproduces dfq's logits: per image,
    e = max |ort - dfq| / max |dfq| (over all images); the median image's e <= tol and the argmax
    agrees on >= 99.5 % of images. Why not the maximum: ONNX Runtime's convolutions sum in another
    order than dfq's, so a pre-quantization value within an ulp of a rounding boundary takes the
    neighbouring code in one of them, and that one-step difference (1/15 of the range at 4 bits)
    propagates; images where no value sits on a boundary agree to ~1e-7 (the maximum, the fraction
    within tol and the agreement are all printed);
  - ort: with every optimisation on, the optimised graph has an integer kernel (QLinearConv /
    ConvInteger, QGemm / MatMulInteger / QLinearMatMul) for every Conv and Gemm of the file and no
    float Conv / Gemm left; its top-1 on the images is within top1_tol of --ort_ref_top1 (dfq's own
    sym fake-quant model, from its --json);
  - trt: checker only (TensorRT does not run here); its ONNX Runtime top-1 is printed;
  - --bench: ONNX Runtime int8 (the ort file) against float32 (--float) at batch 1 and 64.
Exit status 1 on any failed check, with one line naming it.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort

INT_CONV = {"QLinearConv", "ConvInteger"}
INT_GEMM = {"QGemm", "MatMulInteger", "QLinearMatMul", "MatMulIntegerToFloat", "DynamicQuantizeMatMul"}


def session(path, optimize, optimized_out=None, threads=0):
    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    if optimized_out:
        so.optimized_model_filepath = optimized_out
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run(sess, images, batch=256):
    name = sess.get_inputs()[0].name
    out = [sess.run(None, {name: images[i:i + batch]})[0] for i in range(0, len(images), batch)]
    return np.concatenate(out, 0)


def top1(logits, labels):
    return 100.0 * float(np.mean(np.argmax(logits, 1) == labels))


def op_counts(model):
    counts = {}
    for n in model.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


def latency(sess, image, batch, reps):
    name = sess.get_inputs()[0].name
    x = np.repeat(image[None], batch, 0)
    for _ in range(3):
        sess.run(None, {name: x})
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--faithful")
    ap.add_argument("--ort")
    ap.add_argument("--ort_ref_top1", type=float)
    ap.add_argument("--trt")
    ap.add_argument("--float")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--top1_tol", type=float, default=0.2)
    ap.add_argument("--label", default="")
    ap.add_argument("--json", help="write {ort_top1} (the ort file's top-1) to this file")
    a = ap.parse_args()
    images = np.load(os.path.join(a.dump, "images.npy")).astype(np.float32)
    labels = np.load(os.path.join(a.dump, "labels.npy"))
    ref = np.load(os.path.join(a.dump, "dfq_logits.npy"))
    tag = (a.label + ": ") if a.label else ""
    failed = []
    # A reference that predicts one class (a collapsed model) would make every comparison vacuous.
    if len(np.unique(np.argmax(ref, 1))) < 2:
        print(f"check_onnx: {tag}FAILED: dfq's logits predict a single class (a collapsed model); nothing to compare",
              file=sys.stderr)
        return 1

    for path in [p for p in (a.faithful, a.ort, a.trt, a.float) if p]:
        onnx.checker.check_model(onnx.load(path), full_check=True)
        print(f"{tag}{os.path.basename(path)}: onnx.checker full_check passed")

    if a.faithful:
        logits = run(session(a.faithful, optimize=False), images)
        scale = float(np.max(np.abs(ref)))
        per = np.max(np.abs(logits - ref), 1) / scale
        median, worst = float(np.median(per)), float(np.max(per))
        within = 100.0 * float(np.mean(per <= a.tol))
        agree = 100.0 * float(np.mean(np.argmax(logits, 1) == np.argmax(ref, 1)))
        ok = median <= a.tol and agree >= 99.5
        print(f"{tag}faithful, ORT optimisations off, {len(images)} images: per-image max |ort - dfq| / max |logit| "
              f"({scale:.3g}): median {median:.2g} (limit {a.tol:g}), {within:.1f} % of images within it, max {worst:.2g}; "
              f"argmax agrees on {agree:.2f} % (limit 99.5); top-1 ort {top1(logits, labels):.2f} / dfq {top1(ref, labels):.2f}"
              f"  {'ok' if ok else 'FAILED'}")
        if not ok:
            failed.append("faithful logits differ from dfq's")

    if a.ort:
        src = op_counts(onnx.load(a.ort))
        with tempfile.TemporaryDirectory() as d:
            opt_path = os.path.join(d, "optimized.onnx")
            sess = session(a.ort, optimize=True, optimized_out=opt_path)
            opt = op_counts(onnx.load(opt_path))
        convs, gemms = src.get("Conv", 0), src.get("Gemm", 0)
        int_convs = sum(opt.get(k, 0) for k in INT_CONV)
        int_gemms = sum(opt.get(k, 0) for k in INT_GEMM)
        left = opt.get("Conv", 0) + opt.get("Gemm", 0) + opt.get("FusedConv", 0) + opt.get("MatMul", 0) + opt.get("FusedGemm", 0)
        fused = int_convs >= convs and int_gemms >= gemms and left == 0
        logits = run(sess, images)
        t1 = top1(logits, labels)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"ort_top1": t1}, f)
        print(f"{tag}ort, ORT optimisations on: {int_convs} integer convs for {convs} Conv, {int_gemms} integer gemms for "
              f"{gemms} Gemm, {left} float conv / gemm left  {'ok' if fused else 'FAILED'}")
        print(f"{tag}   optimised graph ops: " + ", ".join(f"{k} {v}" for k, v in sorted(opt.items())))
        if not fused:
            failed.append("ort graph not fully fused into integer kernels")
        if a.ort_ref_top1 is not None:
            ok = abs(t1 - a.ort_ref_top1) <= a.top1_tol
            print(f"{tag}ort int8 top-1 {t1:.2f} against dfq sym fake-quant {a.ort_ref_top1:.2f} "
                  f"(|diff| {abs(t1 - a.ort_ref_top1):.2f}, limit {a.top1_tol})  {'ok' if ok else 'FAILED'}")
            if not ok:
                failed.append("ort top-1 differs from dfq's sym model")
        else:
            print(f"{tag}ort int8 top-1 {t1:.2f}")

    if a.trt:
        logits = run(session(a.trt, optimize=True), images)
        print(f"{tag}trt (structure for TensorRT; run here by ONNX Runtime, S8S8): top-1 {top1(logits, labels):.2f}")

    if a.bench and a.ort and a.float:
        threads = os.cpu_count() or 1
        s_int = session(a.ort, optimize=True, threads=threads)
        s_fp = session(a.float, optimize=True, threads=threads)
        for batch, reps in ((1, 50), (64, 10)):
            ti = latency(s_int, images[0], batch, reps)
            tf = latency(s_fp, images[0], batch, reps)
            print(f"{tag}ONNX Runtime latency, batch {batch}: int8 {ti * 1e3:.2f} ms, float32 {tf * 1e3:.2f} ms, "
                  f"int8 / fp32 time {ti / tf:.2f}")

    if failed:
        print(f"check_onnx: {tag}FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
