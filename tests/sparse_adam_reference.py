# Reference for tests/test_sparse.c (lazy_adam_matches_torch_sparse_adam): three
# steps of torch.optim.SparseAdam on W and torch.optim.Adam on b for a softmax
# regression over sparse rows. Run with /usr/bin/python3 (PyTorch 1.13); the
# printed numbers are pasted into the test.
import torch

torch.set_default_dtype(torch.float64)
F, C = 6, 3
w0 = [[0.1 * ((o * F + f) % 7) - 0.3 for f in range(F)] for o in range(C)]  # [C, F] as the test builds it
wt = torch.nn.Parameter(torch.tensor(w0).T.contiguous())  # [F, C]: SparseAdam updates rows (features)
b = torch.nn.Parameter(torch.zeros(C))
sparse_opt = torch.optim.SparseAdam([wt], lr=0.05, betas=(0.9, 0.999), eps=1e-8)
dense_opt = torch.optim.Adam([b], lr=0.05, betas=(0.9, 0.999), eps=1e-8)
batches = [  # (rows as {feature: value}, labels)
    ([{0: 1.0, 2: -2.0}, {2: 0.5, 5: 3.0}], [2, 0]),
    ([{1: 1.5}, {0: -1.0, 4: 2.0}], [1, 2]),
    ([{3: 0.25, 5: -1.0}, {2: 2.0}], [0, 1]),
]
for rows, labels in batches:
    x = torch.zeros(len(rows), F)
    for i, r in enumerate(rows):
        for f, v in r.items():
            x[i, f] = v
    loss = torch.nn.functional.cross_entropy(x @ wt + b, torch.tensor(labels))
    sparse_opt.zero_grad()
    dense_opt.zero_grad()
    loss.backward()
    touched = sorted({f for r in rows for f in r})
    idx = torch.tensor([touched])
    wt.grad = torch.sparse_coo_tensor(idx, wt.grad[touched], wt.shape)
    sparse_opt.step()
    dense_opt.step()
print("W", ", ".join("%.17g" % v for v in wt.detach().T.reshape(-1).tolist()))
print("b", ", ".join("%.17g" % v for v in b.detach().tolist()))
