"""PyTorch versions of the benchmarked networks and training iterations, layer for layer the
same as genvision_jax's (same widths, kernels, normalization, optimizers and losses), so the
JAX steps can be timed against them on the same machine. Needs the `bench` extra (torch)."""

import torch
from torch import nn
import torch.nn.functional as F


class DCGANGenerator(nn.Module):
  """28 px: z -> 7x7x(2w) -> 14x14xw -> 28x28xC, as genvision_jax.models.dcgan.Generator."""

  def __init__(self, latent_dim=100, width=64, channels=1):
    super().__init__()
    self.width = width
    self.fc = nn.Linear(latent_dim, 7 * 7 * 2 * width, bias=False)
    self.bn0 = nn.BatchNorm2d(2 * width, momentum=0.1, eps=1e-5)
    self.up1 = nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(width, momentum=0.1, eps=1e-5)
    self.up2 = nn.ConvTranspose2d(width, channels, 4, 2, 1)

  def forward(self, z):
    h = self.fc(z).view(-1, 2 * self.width, 7, 7)
    h = F.relu(self.bn0(h))
    h = F.relu(self.bn1(self.up1(h)))
    return torch.tanh(self.up2(h))


class DCGANDiscriminator(nn.Module):
  """28 px: two 4x4 stride-2 convs (BatchNorm on the second), LeakyReLU 0.2, dense logit."""

  def __init__(self, width=64, channels=1):
    super().__init__()
    self.c1 = nn.Conv2d(channels, width, 4, 2, 1)
    self.c2 = nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(2 * width, momentum=0.1, eps=1e-5)
    self.fc = nn.Linear(7 * 7 * 2 * width, 1)

  def forward(self, x):
    h = F.leaky_relu(self.c1(x), 0.2)
    h = F.leaky_relu(self.bn2(self.c2(h)), 0.2)
    return self.fc(h.flatten(1))[:, 0]


class DCGANStep:
  """One Algorithm-1 iteration with k = 1: a D update, then a non-saturating G update."""

  def __init__(self, latent_dim=100, width=64, lr=2e-4):
    self.latent_dim = latent_dim
    self.g = DCGANGenerator(latent_dim, width)
    self.d = DCGANDiscriminator(width)
    self.g_opt = torch.optim.Adam(self.g.parameters(), lr=lr, betas=(0.5, 0.999))
    self.d_opt = torch.optim.Adam(self.d.parameters(), lr=lr, betas=(0.5, 0.999))

  def __call__(self, real):
    b = real.shape[0]
    z = torch.randn(b, self.latent_dim)
    with torch.no_grad():
      fake = self.g(z)
    d_loss = F.softplus(-self.d(real)).mean() + F.softplus(self.d(fake)).mean()
    self.d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    self.d_opt.step()
    z = torch.randn(b, self.latent_dim)
    for p in self.d.parameters():
      p.requires_grad_(False)
    g_loss = F.softplus(-self.d(self.g(z))).mean()
    self.g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    self.g_opt.step()
    for p in self.d.parameters():
      p.requires_grad_(True)
    return d_loss.detach(), g_loss.detach()


class ConvVAE(nn.Module):
  """As genvision_jax.models.vae.VAE(architecture='conv', width=32, hidden=256) at 28 px."""

  def __init__(self, latent_dim=16, width=32, hidden=256, channels=1):
    super().__init__()
    self.width = width
    self.e1 = nn.Conv2d(channels, width, 4, 2, 1)
    self.e2 = nn.Conv2d(width, 2 * width, 4, 2, 1)
    self.e3 = nn.Linear(7 * 7 * 2 * width, hidden)
    self.mean = nn.Linear(hidden, latent_dim)
    self.logvar = nn.Linear(hidden, latent_dim)
    self.d1 = nn.Linear(latent_dim, hidden)
    self.d2 = nn.Linear(hidden, 7 * 7 * 2 * width)
    self.d3 = nn.ConvTranspose2d(2 * width, width, 4, 2, 1)
    self.d4 = nn.ConvTranspose2d(width, channels, 4, 2, 1)

  def forward(self, x):
    h = F.relu(self.e2(F.relu(self.e1(x))))
    h = F.relu(self.e3(h.flatten(1)))
    mean, logvar = self.mean(h), self.logvar(h)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    h = F.relu(self.d2(F.relu(self.d1(z)))).view(-1, 2 * self.width, 7, 7)
    return self.d4(F.relu(self.d3(h))), mean, logvar


class VAEStep:
  """One Adam step on the negative ELBO (Bernoulli likelihood on [0, 1] targets)."""

  def __init__(self, lr=1e-3):
    self.vae = ConvVAE()
    self.opt = torch.optim.Adam(self.vae.parameters(), lr=lr)

  def __call__(self, images):
    targets = (images + 1) / 2
    logits, mean, logvar = self.vae(images)
    recon = F.binary_cross_entropy_with_logits(logits, targets, reduction='none').flatten(1).sum(1)
    kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(1)
    loss = (recon + kl).mean()
    self.opt.zero_grad(set_to_none=True)
    loss.backward()
    self.opt.step()
    return loss.detach()
