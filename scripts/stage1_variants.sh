# The five shipped Stage 1 variants: name -> train.py arguments (sourced by the training scripts).
declare -A ARGS=(
  [aae-lsgan-128]="aae --adversarial lsgan"
  [aae-dual-128]="aae --adversarial lsgan --dual"
  [aae-bce-128]="aae --adversarial bce"
  [vae-128]="vae"
  [aae-lsgan-32]="aae --adversarial lsgan --model.latent-dim 32"
)
