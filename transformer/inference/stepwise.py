"""Decoding step by step (the explorer's "Decoding" panel, `translate --alternatives`): why
the model chose each word.

* :func:`prefix_ids`: a target text forced at the start of the output (the loops of
  :mod:`transformer.inference.loops` take it as ``forced``; greedy or beam);
* :func:`alternatives`: for the chosen output, at every step, the k most probable next tokens
  under the model (the step's softmax over the target vocabulary, pad and ``<s>`` excluded, as
  the loops rule them out) and the chosen token's rank: the cached greedy loop re-run with
  the whole output (and its eos) forced, recording each step (no per-token Python);
* :func:`beam_tree`: every hypothesis the beam search kept at each step, with its parent,
  token, cumulative log-probability, GNMT length-penalised score ``logp / lp(t + 1)``
  (Wu et al. 2016, eq. 14) and status: ``finished`` (among the K finished hypotheses at the
  end), ``alive`` (on the path of one of them), ``pruned`` (a branch the search dropped).
"""

import numpy as np

from transformer.inference import decoding
from transformer.inference.decoding import EOS, output_bound
from tutorials_common.cliutil import UserError

MAX_ALTERNATIVES = decoding.MAX_TOP_K  # 10
MAX_BEAM_TREE = 8
DECIMALS = 4


def output_limit(model, source_ids):
    """The most output tokens (eos included) for one encoded source: 2 n + 10, at most the
    model's ``max_length``."""
    return int(min(output_bound(len(source_ids)), model.max_length))


def prefix_ids(run, text, source_ids):
    """The target ids of ``text`` to force at the start of the translation of ``source_ids``
    (:func:`check_prefix`)."""
    ids = run.tgt_tokenizer.encode(text.strip()) if text.strip() else []
    check_prefix(run.model, source_ids, ids)
    return ids


def check_prefix(model, source_ids, ids):
    """UserError when the forced ``ids`` leave no room for the end mark within
    :func:`output_limit` of ``source_ids``."""
    limit = output_limit(model, source_ids) - 1
    if len(ids) > limit:
        raise UserError(f"the prefix has {len(ids)} pieces; this sentence allows at most {limit}")


def alternatives(run, source_ids, output_ids, k, n_forced=0):
    """One dict per output step of ``output_ids`` (no bos, no eos) and its end mark (unless the
    output reached the bound): ``step``, ``id``, ``prob``, ``rank``, ``forced`` (the first
    ``n_forced`` steps) and ``candidates``, the top ``k`` (id, prob), most probable first."""
    if not 1 <= k <= MAX_ALTERNATIVES:
        raise UserError(f"alternatives must be from 1 to {MAX_ALTERNATIVES}")
    limit = output_limit(run.model, source_ids)
    forced = list(output_ids) + ([EOS] if len(output_ids) < limit else [])
    src = np.array([source_ids], np.int32)
    ids, top_ids, top_probs, chosen, rank = decoding.decode_steps(run.model, src, k, forced, limit)
    piece = run.tgt_tokenizer.id_to_piece
    return [
        {
            "step": t,
            "token": piece(int(ids[0, t])),
            "id": int(ids[0, t]),
            "prob": round(float(chosen[0, t]), DECIMALS),
            "rank": int(rank[0, t]),
            "forced": t < n_forced,
            "candidates": [
                {"token": piece(int(i)), "id": int(i), "prob": round(float(p), DECIMALS)}
                for i, p in zip(top_ids[0, t], top_probs[0, t])
            ],
        }
        for t in range(len(forced))
    ]


def beam_tree(run, source_ids, beam, alpha=0.6, prefix=(), restore=lambda text: text):
    """The beam tree of one sentence (the explorer's ``"beam_tree"``; see the module docstring):
    ``nodes`` (the root first, then every kept or finishing candidate, parents before
    children) and ``finished`` (ranked by score; ``restore`` maps a decoded text back to the
    original names). Also returns the chosen hypothesis' ids (no eos), as :func:`loops.beam`."""
    if not 2 <= beam <= MAX_BEAM_TREE:
        raise UserError(f"beam_tree needs beam >= 2 and <= {MAX_BEAM_TREE}")
    limit = output_limit(run.model, source_ids)
    src = np.array([source_ids], np.int32)
    best, *per_step, fin_nodes, fin_scores = decoding.beam_tree_search(
        run.model, src, beam, alpha, prefix, limit
    )
    parents, tokens, logps, kept, finishing, searching = (a[:, 0] for a in per_step)  # (steps, 2K), (steps,)
    best, fin_nodes, fin_scores = best[0], fin_nodes[0], fin_scores[0]
    width, final = 2 * beam, {int(n): float(s) for n, s in zip(fin_nodes, fin_scores) if s > -np.inf}
    flat = [
        (t, c)
        for t in range(len(tokens))
        if searching[t]
        for c in range(width)
        if (kept[t, c] or finishing[t, c]) and logps[t, c] > -np.inf
    ]
    number = {-1: 0, **{t * width + c: i for i, (t, c) in enumerate(flat, 1)}}
    on_path = set()
    for node in final:
        t, c = divmod(node, width)
        while parents[t, c] >= 0 and parents[t, c] not in on_path:
            on_path.add(int(parents[t, c]))
            t, c = divmod(int(parents[t, c]), width)
    piece = run.tgt_tokenizer.id_to_piece
    nodes = [dict(id=0, parent=None, step=-1, token="<s>", token_id=1, logprob=0.0, score=0.0, status="root")]
    for t, c in flat:
        node, logp = t * width + c, float(logps[t, c])
        status = "finished" if node in final else "alive" if node in on_path else "pruned"
        nodes.append(
            dict(
                id=number[node],
                parent=number[int(parents[t, c])],
                step=t,
                token=piece(int(tokens[t, c])),
                token_id=int(tokens[t, c]),
                logprob=round(logp, DECIMALS),
                score=round(logp / ((5.0 + t + 1) / 6.0) ** alpha, DECIMALS),
                status=status,
            )
        )
    ranked = sorted(final.items(), key=lambda item: -item[1])
    finished = [
        {
            "node": number[node],
            "rank": rank,
            "score": round(score, DECIMALS),
            "text": restore(run.tgt_tokenizer.decode(_path_ids(node, width, parents, tokens))),
            "chosen": rank == 1,
        }
        for rank, (node, score) in enumerate(ranked, 1)
    ]
    chosen = [int(i) for i in best if i not in (0, EOS)]
    return {"beam": beam, "alpha": alpha, "nodes": nodes, "finished": finished}, chosen


def _path_ids(node, width, parents, tokens):
    """The token ids from the root to ``node`` (a flat candidate number), eos dropped."""
    ids = []
    while node >= 0:
        t, c = divmod(node, width)
        ids.append(int(tokens[t, c]))
        node = int(parents[t, c])
    return [i for i in reversed(ids) if i != EOS]


def hypothesis_ids(tree, node_id):
    """The token ids (eos dropped) of the hypothesis that ends at node ``node_id`` of a
    :func:`beam_tree` answer, read through its ``parent`` links."""
    by_id = {n["id"]: n for n in tree["nodes"]}
    ids = []
    while by_id[node_id]["parent"] is not None:
        ids.append(by_id[node_id]["token_id"])
        node_id = by_id[node_id]["parent"]
    return [i for i in reversed(ids) if i != EOS]
