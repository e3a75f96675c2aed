"""The Markdown table of the Transformer bench report (bench.md): one row per figure, with
its own measurement and baseline and their ratio."""

from transformer.bench.recorded_quality import quality_rows
from tutorials_common import benchreport


def markdown(report):
    t, d, e, m = report["training"], report["decoding"], report["efficiency"], report["memory"]
    c = report["config"]
    dims = f"{c['num_layers']} layers, d_model {c['d_model']}, {c['num_heads']} heads, dff {c['dff']}"
    ours, other = t["precision"], t.get("other_precision")  # the other only with --other-precision
    rows = [
        (
            f"training throughput, target tokens/s, ours in {ours} (the default here; baseline: stock Keras "
            f"in float32, fixed length {t['lengths'][base]}, batch 64, `model.fit`)",
            f"{t['ours']['tokens_per_second']:,.0f}",
            f"{t[base]['tokens_per_second']:,.0f}",
            benchreport.ratio(t["speedup"][base]),
        )
        for base in t["baselines"]
    ]
    if other:
        rows += [
            (
                f"the same, ours in {other}",
                f"{t['ours_other_precision']['tokens_per_second']:,.0f}",
                f"{t[base]['tokens_per_second']:,.0f}",
                benchreport.ratio(t["speedup_other_precision"][base]),
            )
            for base in t["baselines"]
        ]
        rows.append(
            (
                f"training throughput, ours in {ours} vs ours in {other} (target tokens/s)",
                f"{t['ours']['tokens_per_second']:,.0f}",
                f"{t['ours_other_precision']['tokens_per_second']:,.0f}",
                benchreport.ratio(t["precision_speedup"]),
            )
        )
    peaks = e["matmul_peak_gflops"]
    rows += [
        (f"matmul peak, {dtype} ({e['matmul_n']}x{e['matmul_n']}), GFLOP/s", f"{gflops:.0f}", "", "")
        for dtype, gflops in peaks.items()
    ]
    for name in e["dtype"]:  # ours, ours in the other precision if measured, the baselines
        label = {"ours": f"ours ({ours})", "ours_other_precision": f"ours ({other})"}.get(
            name, f"stock Keras, length {t['lengths'].get(name)}"
        )
        rows.append(
            (
                f"training FLOP/s, {label}: share of the {e['dtype'][name]} matmul peak",
                f"{e['gflops'][name]:.1f} GFLOP/s = {e['utilization_pct'][name]:.1f}%",
                "",
                "",
            )
        )
    rows += [
        (
            "share of computed target positions that are real tokens",
            f"{t['ours']['padding_efficiency']:.0%}",
            " / ".join(format(t[b]["padding_efficiency"], ".0%") for b in t["baselines"]),
            "",
        ),
        (
            f"greedy decoding, sentences/s (batch {d['batch']}, {d['output_tokens']} output tokens; "
            "baseline: recompute the prefix)",
            f"{d['sentences_per_second']['cached']:.1f}",
            f"{d['sentences_per_second']['recompute']:.1f}",
            benchreport.ratio(d["cached_speedup"]),
        ),
        (
            "greedy decoding latency per sentence, ms (batch 1; median)",
            f"{d['latency_ms']['cached']:.0f}",
            f"{d['latency_ms']['recompute']:.0f}",
            benchreport.ratio(d["cached_latency_speedup"]),
        ),
        (
            "the same, fastest of all repetitions (the least disturbed by other processes)",
            f"{d['latency_min_ms']['cached']:.0f}",
            f"{d['latency_min_ms']['recompute']:.0f}",
            benchreport.ratio(d["cached_latency_speedup_min"]),
        ),
        (
            f"the same, XLA-compiled loop (`greedy_decode_xla`), sentences/s (batch {d['batch']})",
            f"{d['sentences_per_second']['xla']:.1f}",
            f"{d['sentences_per_second']['recompute']:.1f}",
            benchreport.ratio(d["xla_speedup"]),
        ),
        (
            "XLA-compiled loop, latency per sentence, ms (batch 1; median)",
            f"{d['latency_ms']['xla']:.0f}",
            f"{d['latency_ms']['recompute']:.0f}",
            benchreport.ratio(d["xla_latency_speedup"]),
        ),
        (
            "the same, fastest of all repetitions",
            f"{d['latency_min_ms']['xla']:.0f}",
            f"{d['latency_min_ms']['recompute']:.0f}",
            benchreport.ratio(d["xla_latency_speedup_min"]),
        ),
        (
            f"the decoder `decode()` calls in translate, evaluate and heat maps: `{d['default_path']}`, "
            f"sentences/s (batch {d['batch']}) vs recompute",
            "",
            "",
            benchreport.ratio(d["default_speedup"]),
        ),
        (
            "the same, latency (batch 1; median) vs recompute",
            "",
            "",
            benchreport.ratio(d["default_latency_speedup"]),
        ),
        (
            f"the decoder of a precompiled model (the server): `{d['server_path']}`, latency (batch 1; "
            "median) vs recompute",
            "",
            "",
            benchreport.ratio(d["server_latency_speedup"]),
        ),
        (
            f"beam 4, XLA loop (`beam_search_xla`, what `decode()` runs for one sentence) vs "
            f"`beam_search` (what it runs for more), sentences/s (batch {d['batch']})",
            f"{d['sentences_per_second']['beam4_xla']:.1f}",
            f"{d['sentences_per_second']['beam4']:.1f}",
            benchreport.ratio(d["beam4_xla_speedup"]),
        ),
        (
            "the same, latency per sentence, ms (batch 1; median)",
            f"{d['latency_ms']['beam4_xla']:.0f}",
            f"{d['latency_ms']['beam4']:.0f}",
            benchreport.ratio(d["beam4_xla_latency_speedup"]),
        ),
        *end_to_end_rows(d.get("end_to_end")),
        *engine_rows(d.get("engine")),
        (
            f"beam 4 time / greedy time (batch {d['batch']}, cached)",
            "",
            "",
            f"{d['beam4_over_greedy_time']:.2f}",
        ),
        (
            f"peak resident memory after {m['steps']} training steps (the bench process before any baseline "
            "is built: TensorFlow, data, model, optimizer), MiB",
            f"{m['ours_mib']:.0f}",
            "",
            "",
        ),
    ]
    rows += quality_rows(report.get("quality", {}))
    lines = [
        f"Measured {report['date']} on {report['device']} with `{report['command']}`; "
        f"model `{report['profile']}` ({dims}, vocabulary {c['tgt_vocab_size']}), data: {report['data']}.",
        "",
        *benchreport.table(rows),
        "",
        "Counting: throughput = real (non-padding) target tokens per second of training, summed over "
        f"{report['rounds']} alternating rounds of about {report['seconds_per_round']:g} s per side; "
        "FLOPs = 3 x forward matmul FLOPs of the executed (padded) batch shapes; decoding times are "
        "medians; the ids of cached, XLA and recompute decoding are identical, and those of beam 4 and its "
        "XLA loop; memory = ru_maxrss. "
        "Decoding runs in float32 (shipped models load in float32). The time to quality and the BLEU of "
        "a bfloat16-trained model take full training runs and are copied from docs/results/ (date, "
        "machine and command in their rows), not measured by this command.",
    ]
    return "\n".join(lines) + "\n"


def end_to_end_rows(e2e):
    """Rows of the `translate` command and server figures (``end_to_end.py``), if measured."""
    if not e2e:
        return []
    t, srv = e2e["translate"], e2e["server"]
    return [
        (
            f"`python -m transformer translate` on {t['sentences']:,} test sentences ({e2e['model']}), "
            "wall seconds of the process: XLA loops vs today's (the default)",
            f"{t['seconds']['xla']:.1f}",
            f"{t['seconds']['today']:.1f}",
            benchreport.ratio(t["speedup"]),
        ),
        (
            f"server `POST /api/translate`, a {srv['words']}-word sentence, median ms over "
            f"{srv['requests']} requests: XLA loops (the default once precompiled) vs today's",
            f"{srv['median_ms']['xla']:.0f}",
            f"{srv['median_ms']['today']:.0f}",
            benchreport.ratio(srv["speedup"]),
        ),
        (
            "server start-up: `decoding.precompile` (batch 1, source widths up to "
            f"{srv.get('precompile_max_source', 'the model limit')} tokens), shapes; seconds",
            f"{srv['precompiled_shapes']}; {srv['precompile_seconds']:.1f} s",
            "",
            "",
        ),
    ]


def engine_rows(engine):
    """Rows of the CTranslate2 engine (``engine_speed.py``), if measured."""
    if not engine:
        return []
    d, rows = engine["decoding"], []
    for name in d["speedup"]:
        mark = " (the engine's setting)" if name == d["engine_setting"] else ""
        rows += [
            (
                f"CTranslate2 engine, {name}{mark}, greedy (ids identical to Keras: "
                f"{d['identical_greedy_ids']}), sentences/s (batch {d['batch']}) vs recompute",
                f"{d['sentences_per_second'][name]:.1f}",
                f"{d['sentences_per_second']['recompute']:.1f}",
                benchreport.ratio(d["speedup"][name]),
            ),
            (
                "the same, latency per sentence, ms (batch 1; median) vs recompute",
                f"{d['latency_ms'][name]:.1f}",
                f"{d['latency_ms']['recompute']:.0f}",
                benchreport.ratio(d["latency_speedup"][name]),
            ),
        ]
    e = engine.get("end_to_end")
    if not e:
        return rows
    cells = lambda key: (f"{e[key]['ctranslate2']:.2f}", f"{e[key]['tensorflow']:.2f}")  # noqa: E731
    return rows + [
        (
            f"`translate` one sentence, process wall seconds: --engine ctranslate2 vs tensorflow (best of 3; "
            f"conversion into a fresh cache + first sentence: {e['conversion_and_first_sentence_seconds']:.1f} s)",
            *cells("one_sentence_seconds"),
            benchreport.ratio(e["one_sentence_speedup"]),
        ),
        (
            f"`translate` {e['sentences']:,} test sentences, process wall seconds: ctranslate2 vs tensorflow "
            f"(identical output: {e['sentences_identical']})",
            *cells("sentences_seconds"),
            benchreport.ratio(e["sentences_speedup"]),
        ),
        (
            f"`evaluate --split test` ({e['evaluate_sources']:,} sources, greedy), process wall seconds: "
            f"ctranslate2 vs tensorflow (BLEU {e['evaluate_bleu']['ctranslate2']} vs "
            f"{e['evaluate_bleu']['tensorflow']})",
            *cells("evaluate_seconds"),
            benchreport.ratio(e["evaluate_speedup"]),
        ),
    ]
