"""residual-paths: residual networks as ensembles of paths (Veit, Wilber and Belongie 2016).

1. Path counts and length distributions for ResNet-20, -56 and -110 (tinygrad_ds.graph.paths).
2. The gradient's magnitude by path length (Veit et al. Fig. 6) on a trained residual network
   and on the same network untrained (viz.path_grad).
3. A lesion study (Veit et al. Fig. 3): delete each block at test time, in the trained residual
   network and in a plain network of the same depth trained the same way (viz.lesion).
"""
from __future__ import annotations

import numpy as np

from ..errors import TdsError
from ..random import manual_seed
from .run import RunContext, Verdict
from .style import accuracy_axis, color, figure, integer_ticks
from .training import train_classifier

NAME = "residual-paths"
TITLE = "residual networks as ensembles of paths: counts, gradient by path length, lesions"
USES_DATA = True
TAKES_CHECKPOINT = True
CLAIM = """Two stacked residual blocks can be interpreted as creating four *paths* through the
network ... The number of paths grow exponentially in the number of residual blocks, which can
increase the robustness of the network and make it behave like an ensemble of shallow models
(Veit, A., Wilber, M.J. and Belongie, S., 2016. Residual networks behave like ensembles of
relatively shallow networks. NeurIPS)."""
SOURCE = "lectures/001_17a03c881cf67de0.txt, the residual-paths slide (lines 464-471)"


def path_table(depths=(20, 56, 110)) -> tuple[list[dict], dict[int, dict[int, int]]]:
    """Rows (depth, blocks, paths) and {depth: {length: paths}} for the zoo's CIFAR ResNets."""
    from ..graph import trace
    from ..nn import models
    from ..graph.paths import PathGraph

    rows, dists = [], {}
    for depth in depths:
        pg = PathGraph.from_graph(trace(models.resnet_cifar(depth), (1, 3, 32, 32)))
        dists[depth] = pg.length_distribution("blocks")
        rows.append(dict(depth=depth, blocks=pg.num_blocks, paths=pg.count()))
    return rows, dists


def run(ctx: RunContext) -> Verdict:
    from ..nn import models
    from ..tensor import Tensor
    from viz.lesion import lesion_study
    from viz.path_grad import gradient_by_length

    # 1. counts and lengths ------------------------------------------------------------------
    count_rows, dists = path_table()
    ctx.step(1, 4, "path counts: " + ", ".join(f"ResNet-{r['depth']} {r['paths']:.3g}"
                                               for r in count_rows))
    ctx.write_csv("path_counts.csv", count_rows, ["depth", "blocks", "paths"])
    ctx.write_csv("path_lengths.csv",
                  [dict(depth=dp, length=L, paths=c, share=c / sum(dist.values()))
                   for dp, dist in dists.items() for L, c in dist.items()],
                  ["depth", "length", "paths", "share"])

    # 2. train a residual and a plain network -------------------------------------------------
    depth, width, size = ctx.pick((14, 4, 16), (20, 16, 32))
    n_train, n_val = ctx.pick((320, 128), (4000, 1000))
    epochs = ctx.epochs(2, 5)
    d = ctx.data(n_train, n_val, size=size)
    c_in = d.image_shape[0]
    val = ctx.loader(d.val_x, d.val_y, 256)
    nets, accs = {}, {}
    for kind in ("residual", "plain"):
        manual_seed(ctx.seed)
        net = models.resnet_cifar(depth, d.num_classes, residual=kind == "residual",
                                  width=width, in_channels=c_in)
        if kind == "residual" and ctx.checkpoint:
            try:
                net.load(ctx.checkpoint)
            except TdsError as e:
                raise TdsError(f"--checkpoint {ctx.checkpoint}: this run analyses "
                               f"resnet_cifar({depth}, width={width}) on {c_in}-channel images "
                               f"(the full run: ResNet-20, as `tds train examples/resnet.py` "
                               f"writes it), and the checkpoint does not fit: {e}") from None
            ctx.say(f"residual network: weights from {ctx.checkpoint}")
        else:
            hist = train_classifier(ctx, net, d, epochs, label=f"{kind}-{depth}",
                                    optimizer="adam", lr=2e-3)
            accs[kind] = hist.epochs[-1]["val_acc"]
        nets[kind] = net
    ctx.step(2, 4, "trained residual and plain networks")

    # 3. gradient by path length, trained and untrained ---------------------------------------
    x = Tensor(d.val_x[:8])
    manual_seed(ctx.seed)
    fresh = models.resnet_cifar(depth, d.num_classes, width=width, in_channels=c_in)
    samples = ctx.pick(3, 10)
    grad = {}
    for label, net in (("trained", nets["residual"]), ("untrained", fresh)):
        net.eval()
        grad[label] = gradient_by_length(net, x, samples=samples, seed=ctx.seed)
    T = grad["trained"].blocks
    g_rows = [dict(network=lab, length=r.length, paths=r.paths, measured=r.sampled,
                   mean_grad=r.mean, std_grad=r.std, total=r.total)
              for lab, g in grad.items() for r in g.rows]
    ctx.write_csv("grad_by_length.csv", g_rows, ["network", "length", "paths", "measured",
                                                 "mean_grad", "std_grad", "total"])
    ctx.step(3, 4, "gradient by path length measured")

    # 4. lesion study ---------------------------------------------------------------------------
    les = {"residual": lesion_study(nets["residual"], val),
           "plain": lesion_study(nets["plain"], val, (2,) + d.image_shape)}
    l_rows = []
    for kind, res in les.items():
        for r in res.rows:
            block = r.block.replace(".residual", "")
            l_rows.append(dict(network=kind, block=block, acc=r.acc, delta=r.delta,
                               intact_acc=res.baseline_acc))
    ctx.write_csv("lesion.csv", l_rows, ["network", "block", "acc", "delta", "intact_acc"])
    ctx.step(4, 4, "lesion study done")

    # figures -----------------------------------------------------------------------------------
    fig, (a1, a2) = figure(2, title="Paths through the CIFAR ResNets (Veit et al. 2016)")
    for r in count_rows:
        dist = dists[r["depth"]]
        Ls = np.array(sorted(dist))
        share = np.array([dist[L] for L in Ls], dtype=float) / r["paths"]
        a1.plot(Ls, share, marker=".", label=f"ResNet-{r['depth']}: {r['blocks']} blocks, "
                                             f"{r['paths']:.3g} paths")
    a1.set_xlabel("path length (residual branches passed)")
    a1.set_ylabel("share of all paths")
    a1.set_title("path lengths: binomial, centred on half the blocks")
    integer_ticks(a1)
    a1.legend()
    a2.bar([f"ResNet-{r['depth']}" for r in count_rows], [r["blocks"] for r in count_rows],
           color="#adb5bd")
    for i, r in enumerate(count_rows):
        a2.text(i, r["blocks"], f"2^{r['blocks']} = {r['paths']:.3g} paths", ha="center",
                va="bottom", fontsize=8)
    a2.set_ylabel("residual blocks")
    a2.set_title("blocks, and the number of input-to-output paths")
    integer_ticks(a2, "y")
    ctx.save_figure(fig, "path_counts.png")

    fig, (a1, a2) = figure(2, title=f"Gradient by path length, ResNet-{depth} ({T} blocks), "
                                    f"trained vs untrained")
    for lab, ls in (("trained", "-"), ("untrained", "--")):
        g = grad[lab]
        ks = [r.length for r in g.rows]
        a1.errorbar(ks, [r.mean for r in g.rows], yerr=[r.std for r in g.rows], ls=ls,
                    marker="o", capsize=3, color=color("residual"), label=lab,
                    alpha=1.0 if lab == "trained" else 0.6)
        tot = np.array([r.total for r in g.rows])
        a2.plot(ks, tot / tot.sum(), ls=ls, marker="o", color=color("residual"), label=lab,
                alpha=1.0 if lab == "trained" else 0.6)
    a1.set_yscale("log")
    a1.set_xlabel("path length (residual branches passed)")
    a1.set_ylabel("|gradient at the input| along one path")
    a1.set_title("one path's gradient (mean ± std over paths)")
    a2.set_xlabel("path length (residual branches passed)")
    a2.set_ylabel("share of the total gradient")
    a2.set_title("all paths of each length together (paths × mean)")
    for a in (a1, a2):
        integer_ticks(a)
        a.legend()
    ctx.save_figure(fig, "grad_by_length.png")

    fig, a = figure(1, width=10, height=3.8,
                    title=f"Lesion study: delete one block at test time ({depth}-layer networks)")
    rb = [r for r in l_rows if r["network"] == "residual"]
    pb = {r["block"]: r for r in l_rows if r["network"] == "plain"}
    idx = np.arange(len(rb))
    a.plot(idx, [r["acc"] for r in rb], marker="o", color=color("residual"),
           label=f"residual (intact {les['residual'].baseline_acc:.0%})")
    px = [i for i, r in enumerate(rb) if r["block"] in pb]
    a.plot(px, [pb[rb[i]["block"]]["acc"] for i in px], marker="s", ls="none",
           color=color("plain"), label=f"plain (intact {les['plain'].baseline_acc:.0%})")
    a.axhline(les["residual"].baseline_acc, color=color("residual"), lw=0.8, ls=":")
    a.axhline(les["plain"].baseline_acc, color=color("plain"), lw=0.8, ls=":")
    a.set_xticks(idx)
    a.set_xticklabels([r["block"] for r in rb], rotation=45, ha="right", fontsize=7)
    a.set_xlabel("deleted block (stride-2 blocks of the plain network change the shape and "
                 "cannot be deleted)")
    accuracy_axis(a, d.chance, label="validation accuracy (%)")
    a.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    ctx.save_figure(fig, "lesion.png")

    # verdict -------------------------------------------------------------------------------------
    res_drop = np.array([r["delta"] for r in rb if r["block"] in pb])
    plain_drop = np.array([pb[r["block"]]["delta"] for r in rb if r["block"] in pb])
    gt = grad["trained"].rows
    peak_t = max(gt, key=lambda r: r.total).length
    peak_u = max(grad["untrained"].rows, key=lambda r: r.total).length
    slope_t = np.polyfit([r.length for r in gt], np.log([max(r.mean, 1e-30) for r in gt]), 1)[0]
    gu = grad["untrained"].rows
    slope_u = np.polyfit([r.length for r in gu], np.log([max(r.mean, 1e-30) for r in gu]), 1)[0]
    lesion_ok = float(np.mean(res_drop)) > float(np.mean(plain_drop))
    grad_ok = slope_t < 0 and peak_t < T / 2
    agreement = "agrees" if lesion_ok and grad_ok else (
        "partly agrees" if lesion_ok or grad_ok else "disagrees")
    why = ("At initialisation, with He-initialised convolutions and batch norm scales of 1, "
           "every residual branch passes the gradient on with a gain of about 1 or more, so "
           "longer paths are not weaker than short ones (and there are more of them): that is "
           "why an untrained network shows the opposite of Veit et al.'s Fig. 6. ")
    if slope_t < 0:
        why += ("Training shrinks the branches' gains, and the trained network's longer paths "
                "carry less gradient each, as in the paper.")
    else:
        why += (f"Here training has not changed that: in the trained network a path's "
                f"gradient still changes by x{np.exp(slope_t):.2f} per extra block, so the "
                f"short effective paths of Veit et al. (ResNet-110 trained to convergence on "
                f"CIFAR-10) do not appear in this run of a {T}-block network.")
    trained_note = (f"weights from {ctx.checkpoint}" if ctx.checkpoint else
                    f"trained {epochs} epochs: validation accuracy {accs['residual']:.1%}")
    measured = (
        "**Paths.** " + "; ".join(f"ResNet-{r['depth']}: {r['blocks']} blocks, {r['paths']:,} "
                                  f"paths" for r in count_rows)
        + ". The path lengths follow a binomial distribution centred on half the blocks.\n\n"
        f"**Gradient by path length** (ResNet-{depth}, {T} blocks, {samples} paths sampled per "
        f"length, batch of 8 validation images). One path's gradient changes by a factor "
        f"{np.exp(slope_t):.2f} per extra block in the trained network and {np.exp(slope_u):.2f} "
        f"in the untrained one. The paths of length {peak_t} carry the most gradient in "
        f"the trained network ({peak_u} untrained; the median length is {T // 2}).\n\n"
        "| length | paths | trained: mean |grad| | untrained: mean |grad| |\n|---|---|---|---|\n"
        + "\n".join(f"| {a.length} | {a.paths} | {a.mean:.3g} | {b.mean:.3g} |"
                    for a, b in zip(gt, gu))
        + "\n\n" + why + "\n\n"
        f"**Lesion study** (residual {trained_note}; plain {accs.get('plain', float('nan')):.1%})."
        f" Deleting one block of the residual network changes the accuracy by "
        f"{res_drop.mean():+.1%} on average (worst {res_drop.min():+.1%}); deleting one block of "
        f"the plain network by {plain_drop.mean():+.1%} (worst {plain_drop.min():+.1%}); chance "
        f"is {d.chance:.0%}. Only blocks that keep their input's shape are compared.")
    line = (f"deleting a block costs the residual net {-res_drop.mean():.1%} and the plain net "
            f"{-plain_drop.mean():.1%} of accuracy on average; a trained path's gradient "
            f"changes x{np.exp(slope_t):.2f} per extra block (x{np.exp(slope_u):.2f} untrained)")
    setup = (f"Counts: the zoo's resnet_cifar(20, 56, 110), traced and analysed by tinygrad_ds.graph.paths. "
             f"Training: resnet_cifar({depth}, width {width}) and the plain network of the same "
             f"depth (the same blocks without skips), on {len(d.train_x)} {d.name} images, "
             f"{epochs} epochs of Adam (lr 2e-3, cosine schedule, batch 64), "
             f"validated on {len(d.val_x)} images.")
    return Verdict(agreement, line, setup, measured)
