"""The published Yume-5B (Wan2.2 TI2V-5B based) in this package: load its folder unchanged, decode as a stream.

- `folder.load_published_folder(path, device, dtype, offload=False)`: config + DiT + VAE + umT5 (see docs/yume5b.md)
- `dit_loader`: `config.json` + `diffusion_pytorch_model.safetensors` -> `WanDiT`
- `vae` / `vae_keys` / `latent_stats`: `Wan2.2_VAE.pth` -> diffusers `AutoencoderKLWan` + `WanVAE`
- `decoder`: the streaming Wan2.2 decoder (Wan names, torch only)
- `umt5` / `umt5_keys`: `models_t5_umt5-xxl-enc-bf16.pth` -> transformers `UMT5EncoderModel`
- `offload`: DiT blocks streamed from pinned CPU memory; `fp8`: FP8 block Linears (approximate)
- `scaled`: scaled-down files with the published names, for tests and smoke runs

Nothing here is imported by `yume_env.model` itself; diffusers and transformers load lazily.
"""
