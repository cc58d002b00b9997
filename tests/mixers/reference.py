"""Naive per-step recurrences: the ground truth the chunked scans are checked against.

Written as plainly as the papers state them, one time step at a time, so they are slow but obvious."""

import torch


def ssd_recurrence(x, dt, A, B, C, D=None, initial_state=None):
    """Mamba2 SSM: S_t = exp(dt_t A_h) S_{t-1} + dt_t x_t B_t^T; y_t = S_t C_t (+ D x_t).
    x (b,t,h,p), dt (b,t,h), A (h,), B/C (b,t,g,n). Returns y, final state (b,h,p,n)."""
    b, t, h, p = x.shape
    g, n = B.shape[-2:]
    group = torch.arange(h) // (h // g)
    S = x.new_zeros(b, h, p, n) if initial_state is None else initial_state.clone()
    ys = []
    for i in range(t):
        Bi, Ci = B[:, i, group], C[:, i, group]  # (b,h,n)
        decay = torch.exp(dt[:, i] * A)  # (b,h)
        S = decay[..., None, None] * S + (dt[:, i, :, None] * x[:, i])[..., None] * Bi[:, :, None, :]
        yi = (S * Ci[:, :, None, :]).sum(-1)
        if D is not None:
            yi = yi + D[:, None] * x[:, i]
        ys.append(yi)
    return torch.stack(ys, 1), S


def selective_recurrence(u, delta, A, B, C, D=None, initial_state=None):
    """Mamba (v1) selective SSM per channel d and state n:
    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t; y_t = C_t . h_t (+ D u_t).
    u, delta (b,t,d); A (d,n); B, C (b,t,g,n), channel d reads group d // (d_total // g)."""
    b, t, d = u.shape
    g, n = B.shape[-2:]
    group = torch.arange(d) // (d // g)
    h = u.new_zeros(b, d, n) if initial_state is None else initial_state.clone()
    ys = []
    for i in range(t):
        h = torch.exp(delta[:, i, :, None] * A) * h + (delta[:, i] * u[:, i])[..., None] * B[:, i, group]
        yi = (h * C[:, i, group]).sum(-1)
        if D is not None:
            yi = yi + D * u[:, i]
        ys.append(yi)
    return torch.stack(ys, 1), h
