"""Behaviour of the three value paths."""

import pytest
import torch

from movelab.config import ModelConfig, build_config
from movelab.model import GPT, LaveMix, MoveMix

VOCAB, SEQ = 61, 16


def tiny(value_path="standard", **kw) -> ModelConfig:
    return build_config(depth=kw.pop("depth", 2), width=kw.pop("width", 32), heads=2,
                        vocab_size=VOCAB, seq_len=SEQ, value_path=value_path, **kw)


PATHS = [dict(value_path="standard"), dict(value_path="lave", density=1),
         dict(value_path="lave", density=2, gate_standard=True), dict(value_path="move", density=1),
         dict(value_path="move", slots=3, gate_standard=False)]


def randomise_(model: GPT, skip=()):
    """Give every weight (zero-initialised ones included) a random value."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not any(s in name for s in skip):
                p.normal_(0, 0.3)


@pytest.mark.parametrize("value_path,mix", [("lave", LaveMix), ("move", MoveMix)])
def test_gates_are_exactly_one_at_init(value_path, mix):
    model = GPT(tiny(value_path, depth=4))
    h = torch.randn(3, SEQ, 32) * 10
    mixes = [m for m in model.modules() if isinstance(m, mix)]
    assert mixes
    for m in mixes:
        layer = m.router if isinstance(m, MoveMix) else m.gate
        assert torch.equal(2 * torch.sigmoid(layer(h)), torch.ones(3, SEQ, layer.out_features))


@pytest.mark.parametrize("gate_standard,skip", [(True, ("router",)), (False, ())])
def test_move_with_zero_bank_equals_standard(gate_standard, skip):
    """Gates at init (g0 = 1), or the g0 = 1 ablation with trained routers: a zero bank adds
    nothing, so MoVE computes exactly what the standard model with the same weights does."""
    move = GPT(tiny("move", density=2, gate_standard=gate_standard))
    randomise_(move, skip=skip)
    with torch.no_grad():
        move.bank.weight.zero_()
    standard = GPT(tiny("standard"))
    missing, unexpected = standard.load_state_dict(move.state_dict(), strict=False)
    assert not missing and unexpected and all("bank" in k or "router" in k for k in unexpected)
    tokens = torch.randint(0, VOCAB, (2, SEQ))
    torch.testing.assert_close(move(tokens), standard(tokens), rtol=0, atol=1e-6)
    with torch.no_grad():  # and the bank is not inert: a non-zero bank changes the output
        move.bank.weight.normal_()
    assert (move(tokens) - standard(tokens)).abs().max() > 1e-2


@pytest.mark.parametrize("depth,density,layers", [(4, 1, (1, 3)), (5, 1, (0, 2, 4)), (1, 1, (0,)),
                                                  (3, 2, (0, 1, 2))])
def test_lave_tables_sit_on_the_right_layers(depth, density, layers):
    cfg = tiny("lave", depth=depth, density=density)
    assert cfg.lave_layers == layers
    model = GPT(cfg)
    has_table = tuple(i for i, b in enumerate(model.blocks) if isinstance(b.attn.value_mix, LaveMix))
    assert has_table == layers
    assert layers[-1] == depth - 1  # the last layer always has one


def test_move_bank_is_one_tensor_shared_by_every_layer():
    model = GPT(tiny("move", depth=4, density=2))
    assert model.bank.weight.shape == (VOCAB, 4 * 32)  # (V, M * d_kv) with M = 2 * 4 / 2
    assert sum("bank" in n for n, _ in model.named_parameters()) == 1
    assert all(isinstance(b.attn.value_mix, MoveMix) for b in model.blocks)
    assert model.blocks[0].attn.value_mix.router.out_features == 2 * (4 + 1)  # H (M + 1)


@pytest.mark.parametrize("kw", PATHS, ids=lambda kw: str(kw))
def test_causal_future_tokens_do_not_change_the_past(kw):
    model = GPT(tiny(**kw))
    randomise_(model)
    tokens = torch.randint(0, VOCAB, (1, SEQ))
    changed = tokens.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % VOCAB
    a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :10], b[:, :10])
    assert (a[:, 10:] - b[:, 10:]).abs().max() > 1e-3


def test_prefix_targets_of_minus_one_are_ignored():
    model = GPT(tiny())
    randomise_(model)
    tokens = torch.randint(0, VOCAB, (2, SEQ))
    targets = torch.randint(0, VOCAB, (2, SEQ))
    masked = targets.clone()
    masked[:, 0] = -1
    per_token = model(tokens, targets, reduction="none").view(2, SEQ)
    torch.testing.assert_close(model(tokens, masked), per_token[:, 1:].mean())


@pytest.mark.parametrize("kw", PATHS, ids=lambda kw: str(kw))
def test_each_value_path_overfits_a_fixed_batch(kw):
    torch.manual_seed(0)
    model = GPT(tiny(**kw))
    tokens = torch.randint(0, VOCAB, (4, SEQ + 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = model(tokens[:, :-1], tokens[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_memory_paths_learn_their_tables():
    """The tables and bank receive gradient (they are not dead weight). At init the output
    projections are zero, so values get no gradient until one step has moved them."""
    for kw in PATHS[1:]:
        model = GPT(tiny(**kw))
        tokens = torch.randint(0, VOCAB, (2, SEQ))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        model(tokens, tokens).backward()
        opt.step()
        opt.zero_grad()
        model(tokens, tokens).backward()
        memory = [p for n, p in model.named_parameters() if "table" in n or "bank" in n]
        assert memory and all(p.grad is not None and p.grad.abs().sum() > 0 for p in memory)


@pytest.mark.parametrize("gate_standard", [True, False])
def test_fast_bank_gradient_equals_plain_autograd(gate_standard):
    """The fast path (each layer hands (g, dy) back through its taps; the bank's gradient is one
    matmul at the bottom of the stack) computes the loss and every parameter's gradient that plain autograd
    does, and leaves nothing behind for the next backward."""
    def loss_and_grads(fast: bool, tokens, targets):
        torch.manual_seed(0)
        model = GPT(tiny("move", depth=4, density=2, gate_standard=gate_standard))
        randomise_(model)
        model.fast_bank_gradient = fast
        loss = model(tokens, targets)
        loss.backward()
        return loss, {n: p.grad for n, p in model.named_parameters()}

    tokens, targets = torch.randint(0, VOCAB, (2, 3, SEQ))
    fast_loss, fast = loss_and_grads(True, tokens, targets)
    plain_loss, plain = loss_and_grads(False, tokens, targets)
    assert torch.equal(fast_loss, plain_loss)
    assert fast.keys() == plain.keys() and fast["bank.weight"].abs().max() > 0
    for name in fast:
        torch.testing.assert_close(fast[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)


def test_fast_bank_gradient_under_bf16_autocast_follows_plain_autograd():
    """Under bf16 autocast (the GPU path; CPU autocast runs the same dtype logic) the fast path's
    backward mixes no fp32 and bf16 operands, and its loss and gradients are those of plain
    autograd under the same autocast, to bf16 rounding."""
    def loss_and_grads(fast: bool, tokens):
        torch.manual_seed(0)
        model = GPT(tiny("move", depth=4, density=2))
        randomise_(model)
        model.fast_bank_gradient = fast
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(tokens, tokens)
        loss.backward()
        return loss, {n: p.grad for n, p in model.named_parameters()}

    tokens = torch.randint(0, VOCAB, (2, SEQ))
    fast_loss, fast = loss_and_grads(True, tokens)
    plain_loss, plain = loss_and_grads(False, tokens)
    torch.testing.assert_close(fast_loss, plain_loss, rtol=1e-2, atol=0)
    assert fast["bank.weight"].dtype == torch.float32 and fast["bank.weight"].abs().max() > 0
    for name in fast:
        scale = plain[name].abs().max().clamp_min(1e-6)
        assert (fast[name] - plain[name]).abs().max() / scale < 3e-2, name


def test_compiled_move_model_traces_without_graph_breaks():
    """torch.compile traces a training MoVE model, fast bank gradient included, in one graph
    (the fast path's old list side channel broke it at every layer)."""
    import torch._dynamo

    model = GPT(tiny("move", depth=2, density=2))
    assert model.training and model.fast_bank_gradient
    tokens = torch.randint(0, VOCAB, (2, SEQ))
    explained = torch._dynamo.explain(model)(tokens, tokens)
    assert explained.graph_break_count == 0, explained.break_reasons


def test_compiled_fast_path_trains_in_one_graph_with_the_reference_gradients():
    """fullgraph=True (any graph break is an error): the compiled training step's loss and every
    gradient, the fast bank gradient's included, equal eager plain autograd's to float rounding.
    One tiny model (compiling on a CPU costs tens of seconds)."""
    def loss_and_grads(stepper, tokens, targets):
        model.zero_grad(set_to_none=True)
        loss = stepper(tokens, targets)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    model = GPT(tiny("move", depth=2, width=16, density=2))
    randomise_(model)
    tokens, targets = torch.randint(0, VOCAB, (2, 2, SEQ))
    compiled_loss, compiled = loss_and_grads(torch.compile(model, fullgraph=True), tokens,
                                             targets)
    model.fast_bank_gradient = False
    plain_loss, plain = loss_and_grads(model, tokens, targets)
    torch.testing.assert_close(compiled_loss, plain_loss, rtol=1e-5, atol=0)
    assert compiled["bank.weight"].abs().max() > 0
    for name in plain:
        torch.testing.assert_close(compiled[name], plain[name], rtol=1e-4, atol=1e-6, msg=name)


def test_fast_bank_gradient_accumulates_over_backward_calls():
    """Two forward/backward passes without zeroing add their bank gradients, as autograd does."""
    model = GPT(tiny("move", density=2))
    randomise_(model)
    tokens = torch.randint(0, VOCAB, (2, SEQ))
    model(tokens, tokens).backward()
    once = model.bank.weight.grad.clone()
    model(tokens, tokens).backward()
    torch.testing.assert_close(model.bank.weight.grad, 2 * once)


def init_by_name_suffix_(model: GPT):
    """The initialisation as it was chosen before it was explicit per module (commit c596c86: by
    parameter-name suffix); kept only as the oracle of the test below."""
    import math

    cfg = model.cfg
    torch.nn.init.normal_(model.embed.weight, std=cfg.embed_init_std)
    torch.nn.init.normal_(model.head.weight, std=cfg.head_init_std)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.RMSNorm):
            torch.nn.init.ones_(module.weight)
        elif isinstance(module, torch.nn.Embedding) and module is not model.embed:
            slots = cfg.slots if module is model.bank and cfg.bank_init == "width_slots" else 1
            bound = math.sqrt(3.0) / math.sqrt(cfg.width * slots)
            torch.nn.init.uniform_(module.weight, -bound, bound)
        elif isinstance(module, torch.nn.Linear) and module is not model.head:
            if name.endswith(".router") and cfg.router_init_std > 0:
                torch.nn.init.normal_(module.weight, std=cfg.router_init_std)
            elif name.endswith((".o", ".proj", ".router", ".gate")):
                torch.nn.init.zeros_(module.weight)
            else:
                bound = math.sqrt(3.0 / module.in_features)
                torch.nn.init.uniform_(module.weight, -bound, bound)


@pytest.mark.parametrize("kw", [*PATHS, dict(value_path="move", density=2, router_init_std=0.5,
                                             bank_init="width_slots"),
                                dict(value_path="standard", gate_standard=True)])
def test_explicit_init_draws_the_same_weights_as_the_name_suffix_rule(kw, monkeypatch):
    """A seeded model's initial parameters are bit for bit those of the old suffix rule (so
    committed runs keep their weights), and renaming a module cannot change them silently."""
    torch.manual_seed(3)
    explicit = GPT(tiny(**kw))
    monkeypatch.setattr(GPT, "reset_parameters", torch.no_grad()(init_by_name_suffix_))
    torch.manual_seed(3)
    by_suffix = dict(GPT(tiny(**kw)).named_parameters())
    for name, p in explicit.named_parameters():
        assert torch.equal(p, by_suffix[name]), name
    assert explicit.head.weight.std() > 0


@pytest.mark.parametrize("kw", [PATHS[0], PATHS[1], PATHS[3]])
def test_chunked_head_loss_equals_logits_then_cross_entropy(kw, monkeypatch):
    """The training loss in row chunks (7 rows: the last chunk is short) gives the loss and every
    gradient of the full logits and F.cross_entropy, ignored (-1) targets included."""
    import movelab.model

    monkeypatch.setattr(movelab.model, "HEAD_CHUNK_ROWS", 7)
    model = GPT(tiny(**kw))
    randomise_(model)
    tokens, targets = torch.randint(0, VOCAB, (2, 3, SEQ))
    targets[0, :5] = -1
    results = []
    for chunked in (True, False):
        model.zero_grad(set_to_none=True)
        model.chunked_head_loss = chunked
        loss = model(tokens, targets)
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (chunked_loss, chunked), (plain_loss, plain) = results
    torch.testing.assert_close(chunked_loss, plain_loss, rtol=1e-6, atol=0)
    for name in plain:
        torch.testing.assert_close(chunked[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)
    model.eval()  # evaluation (no gradient wanted) takes the logits path
    with torch.no_grad():
        torch.testing.assert_close(model(tokens, targets), plain_loss, rtol=1e-6, atol=0)
