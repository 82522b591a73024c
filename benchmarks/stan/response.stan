// Reference implementation of bayes_blina's response model (families/response.py) in Stan, for
// benchmarks only: patient-level CR data collapsed into binomial cells (patients with the same
// study and factor levels), exactly the arrays that ResponseModel.prepare builds.
//
//   logit P(CR) = alpha + u[study] + sum_f beta_f[level_f]
//   alpha = logit(p_typical),  p_typical ~ Beta(a, b)
//   beta_f ~ ZeroSumNormal(sd_f)   (non-centred: beta_f = sd_f * z_f, z_f ~ ZeroSumNormal(1))
//   sd_f ~ Gamma(shape_f, rate_f);  u = sd_study * zerosum(z_study), sd_study ~ HalfNormal, z_study ~ N(0, 1)
//   (study effects sum to zero, as in bayes_blina 0.2's ResponseModel)
//
// The zero-sum effects use PyMC's own isometric map from R^(K-1) to the sum-zero subspace
// (pymc.distributions.transforms.ZeroSumTransform.backward), so the unconstrained coordinates
// (logit p_typical, log sd_f, the K-1 zero-sum coordinates, log sd_study, z_study) are those PyMC
// samples and the log density agrees with PyMC's up to a constant (benchmarks/check_stan.py).
// Aggregate (published n/N) rows are not supported here: the benchmark data are patient-level.
functions {
  vector zerosum_backward(vector x) {
    int K = num_elements(x) + 1;
    real s = sum(x);
    real nrm = s / (sqrt(K) + K);
    real fill = nrm - s / sqrt(K);
    return append_row(x, fill) - nrm;
  }
}
data {
  int<lower=1> C;                           // cells
  array[C] int<lower=0> cell_n;
  array[C] int<lower=0> cell_y;
  int<lower=1> F;                           // factors
  array[F] int<lower=1> K;                  // levels of each factor
  array[F, C] int<lower=0> cell_level;      // 1-based level of each cell; 0 = unknown (effect 0)
  array[F] int<lower=0, upper=1> centered;  // 1: centred parameterisation of that factor
  int<lower=1> S;                           // studies
  array[C] int<lower=1, upper=S> cell_study;
  int<lower=0, upper=1> use_study;
  real<lower=0> p_typical_alpha;
  real<lower=0> p_typical_beta;
  vector<lower=0>[F] sd_alpha;              // Gamma shape of sd_f
  vector<lower=0>[F] sd_beta;               // Gamma rate of sd_f
  real<lower=0> sd_study_sigma;
}
transformed data {
  int Z = sum(K) - F;                       // zero-sum coordinates in all
  int L = sum(K);
}
parameters {
  real<lower=0, upper=1> p_typical;
  vector<lower=0>[F] sd_f;
  vector[Z] z_raw;
  vector<lower=0>[use_study] sd_study;
  vector[use_study ? S - 1 : 0] z_study;
}
transformed parameters {
  real alpha = logit(p_typical);
  vector[use_study ? S : 0] u_study;        // study effects (zero-sum)
  vector[L] beta_all;                       // beta of every level of every factor, factor by factor
  if (use_study) u_study = sd_study[1] * zerosum_backward(z_study);
  {
    int pz = 1;
    int pb = 1;
    for (f in 1:F) {
      vector[K[f]] zf = zerosum_backward(segment(z_raw, pz, K[f] - 1));
      beta_all[pb:(pb + K[f] - 1)] = K[f] < 2 ? rep_vector(0, K[f]) : (centered[f] ? zf : sd_f[f] * zf);
      pz += K[f] - 1;
      pb += K[f];
    }
  }
}
model {
  vector[C] eta = rep_vector(alpha, C);
  p_typical ~ beta(p_typical_alpha, p_typical_beta);
  sd_f ~ gamma(sd_alpha, sd_beta);
  {
    int pz = 1;
    for (f in 1:F) {
      if (K[f] > 1) {
        if (centered[f]) segment(z_raw, pz, K[f] - 1) ~ normal(0, sd_f[f]);
        else segment(z_raw, pz, K[f] - 1) ~ std_normal();
      }
      pz += K[f] - 1;
    }
  }
  {
    int pb = 1;
    for (f in 1:F) {
      vector[K[f] + 1] b0 = append_row(beta_all[pb:(pb + K[f] - 1)], 0);
      for (c in 1:C) eta[c] += b0[cell_level[f, c] == 0 ? K[f] + 1 : cell_level[f, c]];
      pb += K[f];
    }
  }
  if (use_study) {
    sd_study ~ normal(0, sd_study_sigma);
    z_study ~ std_normal();
    eta += u_study[cell_study];
  }
  cell_y ~ binomial_logit(cell_n, eta);
}
generated quantities {
  vector[C] p_cell;
  vector[L] p_all = inv_logit(alpha + beta_all);   // p_<factor>[level]: other factors at their mean
  {
    vector[C] eta = rep_vector(alpha, C);
    int pb = 1;
    for (f in 1:F) {
      vector[K[f] + 1] b0 = append_row(beta_all[pb:(pb + K[f] - 1)], 0);
      for (c in 1:C) eta[c] += b0[cell_level[f, c] == 0 ? K[f] + 1 : cell_level[f, c]];
      pb += K[f];
    }
    if (use_study) eta += u_study[cell_study];
    p_cell = inv_logit(eta);
  }
}
