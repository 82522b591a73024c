// Reference implementation of bayes_blina's pulse model (families/pulse.py) in Stan, for
// benchmarks only: the same model, priors and data arrays (PulseModel.prepare), in the same
// sampling coordinates (peak coordinates, the package default, and each of the package's
// coordinates of the patient timing), with the M3 censored likelihood.
//
// For analyte j, patient i and observation at time t:
//   mu_log = log B_ij + log(1 + sum_e A_ije * g(t - t_e)),  g(lag) = (s exp(1 - s))^k_j, s = lag / t_peak_ij
//   log A_ije = log_amp_ij + gamma_j log(dose_e / 15) + delta_j reexposure_e + kappa_j (cycle_e - 1)
//   log y ~ Normal(mu_log, sigma_j)   (censored rows: log Phi((log limit - mu_log) / sigma_j))
//   t_peak_ij = exp(log_tpeak_j) (timing_mode 0), or exp(log_tpeak_i_ij) with patient timing:
//   log_tpeak_i_ij = log_tpeak_j + sd_log_tpeak_j v_ij, v_ij ~ N(0, 1), sampled as
//     timing_mode 1 ("patient_mean"): log_tpeak_c_j = log_tpeak_j + sd_log_tpeak_j mean_i(v_ij) and v
//                                     (flat log_tpeak_c; the prior of log_tpeak at its implied value)
//     timing_mode 2 ("non_centred"):  log_tpeak and v
//     timing_mode 3 ("centred"):      log_tpeak and log_tpeak_i (stored in v_tpeak)
// Patient deviations: a_i ~ N(0, Sigma_a) (Sigma_a = diag(sd_amp) Corr diag(sd_amp), Corr ~ LKJ(eta)),
// b_i ~ N(0, diag(sd_base^2)), sampled in peak coordinates: log_peak_c (typical log peak at the
// centre of the event covariates), log_peak_i = log_peak_c + d_i with d_i = a_i + b_i ~ N(0, S),
// S = Sigma_a + D_b, and u_i ~ N(0, I) with b_i = D_b S^-1 d_i + chol(D_b - D_b S^-1 D_b) u_i.
// The Normal prior of log_amp_mu applies at its implied value (unit Jacobian).
//
// Differences from the PyMC model, none of them in the model itself: the correlation matrix is
// sampled as a Cholesky factor of a correlation matrix (Stan's canonical partial correlations)
// with sd_log_amp separately, where PyMC samples the Cholesky factor of the covariance
// (LKJCholeskyCov); the same prior on (sd_log_amp, Corr). Covariates are not supported (the
// benchmark specs have none). Every prior parameter is given per analyte.
data {
  int<lower=1> N;                           // observation rows: uncensored first, then censored
  int<lower=0, upper=N> N_unc;
  int<lower=1> S;                           // subjects
  int<lower=1> A;                           // analytes
  array[N] int<lower=1, upper=S> obs_subject;
  array[N] int<lower=1, upper=A> obs_analyte;
  vector[N] log_y;                          // used on rows 1..N_unc
  vector[N] log_limit;                      // used on rows N_unc+1..N
  int<lower=0> P;                           // (observation, event) pairs
  array[P] int<lower=1, upper=N> pair_obs;
  array[P] int<lower=1, upper=S> pair_subject;
  array[P] int<lower=1, upper=A> pair_analyte;
  vector<lower=0>[P] pair_lag;
  vector[P] pair_log_dose;
  vector[P] pair_reexposure;
  vector[P] pair_cycle_m1;
  vector[S] first_log_dose;
  vector[S] first_cycle_m1;
  vector[3] event_centre;                   // mean log dose, re-exposure, cycle - 1 of the events
  int<lower=0, upper=1> correlated;
  real<lower=0> lkj_eta;
  int<lower=0, upper=3> timing_mode;        // 0 no patient timing; 1 patient mean; 2 non-centred; 3 centred
  int<lower=1> n_scenario;
  matrix[n_scenario, 3] scenario;           // (log dose ratio, re-exposure, cycle - 1)
  // priors, per analyte: Normal(mu, sigma), Gamma(alpha = shape, beta = rate), LogNormal, HalfNormal
  vector[A] log_baseline_mu_mu;             vector<lower=0>[A] log_baseline_mu_sigma;
  vector<lower=0>[A] sd_log_baseline_alpha; vector<lower=0>[A] sd_log_baseline_beta;
  vector[A] log_amp_mu_mu;                  vector<lower=0>[A] log_amp_mu_sigma;
  vector<lower=0>[A] sd_log_amp_alpha;      vector<lower=0>[A] sd_log_amp_beta;
  vector[A] gamma_dose_mu;                  vector<lower=0>[A] gamma_dose_sigma;
  vector[A] delta_reexposure_mu;            vector<lower=0>[A] delta_reexposure_sigma;
  vector[A] kappa_cycle_mu;                 vector<lower=0>[A] kappa_cycle_sigma;
  vector[A] log_tpeak_mu;                   vector<lower=0>[A] log_tpeak_sigma;
  vector[A] k_shape_mu;                     vector<lower=0>[A] k_shape_sigma;
  vector<lower=0>[A] sigma_obs_sigma;
  vector<lower=0>[A] sd_log_tpeak_alpha;    vector<lower=0>[A] sd_log_tpeak_beta;
}
transformed data {
  array[P] int pair_cell;
  array[N] int obs_cell;
  int N_cen = N - N_unc;
  int T = timing_mode > 0 ? 1 : 0;
  for (p in 1:P) pair_cell[p] = (pair_subject[p] - 1) * A + pair_analyte[p];
  for (n in 1:N) obs_cell[n] = (obs_subject[n] - 1) * A + obs_analyte[n];
}
parameters {
  vector[A] log_baseline_mu;
  vector<lower=0>[A] sd_log_baseline;
  vector[A] gamma_dose;
  vector[A] delta_reexposure;
  vector[A] kappa_cycle;
  vector[timing_mode == 1 ? 0 : A] log_tpeak_par;
  vector<lower=0>[A] k_shape;
  vector<lower=0>[A] sigma_obs;
  vector<lower=0>[A] sd_log_amp;
  cholesky_factor_corr[correlated ? A : 0] L_corr;
  vector[A] log_peak_c;
  matrix[S, A] log_peak_i;
  matrix[S, A] u_baseline;
  vector<lower=0>[T ? A : 0] sd_log_tpeak;
  vector[timing_mode == 1 ? A : 0] log_tpeak_c;
  matrix[T ? S : 0, A] v_tpeak;             // log_tpeak_i itself when timing_mode == 3
}
transformed parameters {
  vector[A] log_amp_mu = log_peak_c - log_baseline_mu - gamma_dose * event_centre[1]
                         - delta_reexposure * event_centre[2] - kappa_cycle * event_centre[3];
  vector[A] log_tpeak;
  matrix[T ? S : 0, A] log_tpeak_i;
  matrix[S, A] log_baseline;
  matrix[S, A] log_amp;
  real logp_d;
  if (timing_mode == 1) {
    row_vector[A] v_bar = rep_row_vector(1.0 / S, S) * v_tpeak;
    log_tpeak = log_tpeak_c - sd_log_tpeak .* v_bar';
    log_tpeak_i = rep_matrix(log_tpeak_c', S) + (v_tpeak - rep_matrix(v_bar, S)) .* rep_matrix(sd_log_tpeak', S);
  } else {
    log_tpeak = log_tpeak_par;
    if (timing_mode == 2) log_tpeak_i = rep_matrix(log_tpeak', S) + v_tpeak .* rep_matrix(sd_log_tpeak', S);
    if (timing_mode == 3) log_tpeak_i = v_tpeak;
  }
  {
    matrix[S, A] d = log_peak_i - rep_matrix(log_peak_c', S);
    vector[A] var_b = square(sd_log_baseline);
    matrix[S, A] dev_b;
    if (correlated) {
      matrix[A, A] La = diag_pre_multiply(sd_log_amp, L_corr);
      matrix[A, A] Ls = cholesky_decompose(add_diag(multiply_lower_tri_self_transpose(La), var_b));
      matrix[A, S] z = mdivide_left_tri_low(Ls, d');               // Ls^-1 d_i
      matrix[A, S] y = mdivide_right_tri_low(z', Ls)';             // S^-1 d_i
      matrix[A, A] m = mdivide_left_tri_low(Ls, diag_matrix(var_b));
      matrix[A, A] c_mat = diag_matrix(var_b) - crossprod(m);      // D_b - D_b S^-1 D_b
      matrix[A, A] c_chol = cholesky_decompose(add_diag(0.5 * (c_mat + c_mat'), 1e-12));
      dev_b = diag_pre_multiply(var_b, y)' + u_baseline * c_chol';
      logp_d = -0.5 * dot_self(to_vector(z)) - S * sum(log(diagonal(Ls)));
    } else {
      vector[A] var_s = square(sd_log_amp) + var_b;
      dev_b = d .* rep_matrix((var_b ./ var_s)', S)
              + u_baseline .* rep_matrix((sd_log_baseline .* sd_log_amp ./ sqrt(var_s))', S);
      logp_d = -0.5 * sum(square(d) ./ rep_matrix(var_s', S)) - 0.5 * S * sum(log(var_s));
    }
    log_baseline = rep_matrix(log_baseline_mu', S) + dev_b;
    log_amp = rep_matrix(log_amp_mu', S) + d - dev_b;
  }
}
model {
  log_baseline_mu ~ normal(log_baseline_mu_mu, log_baseline_mu_sigma);
  sd_log_baseline ~ gamma(sd_log_baseline_alpha, sd_log_baseline_beta);
  gamma_dose ~ normal(gamma_dose_mu, gamma_dose_sigma);
  delta_reexposure ~ normal(delta_reexposure_mu, delta_reexposure_sigma);
  kappa_cycle ~ normal(kappa_cycle_mu, kappa_cycle_sigma);
  log_tpeak ~ normal(log_tpeak_mu, log_tpeak_sigma);      // timing_mode 1: at its implied value
  k_shape ~ lognormal(k_shape_mu, k_shape_sigma);
  sigma_obs ~ normal(0, sigma_obs_sigma);
  sd_log_amp ~ gamma(sd_log_amp_alpha, sd_log_amp_beta);
  if (correlated) L_corr ~ lkj_corr_cholesky(lkj_eta);
  log_amp_mu ~ normal(log_amp_mu_mu, log_amp_mu_sigma);
  target += logp_d;
  to_vector(u_baseline) ~ std_normal();
  if (T) {
    sd_log_tpeak ~ gamma(sd_log_tpeak_alpha, sd_log_tpeak_beta);
    if (timing_mode == 3) to_vector(v_tpeak) ~ normal(to_vector(rep_matrix(log_tpeak', S)),
                                                     to_vector(rep_matrix(sd_log_tpeak', S)));
    else to_vector(v_tpeak) ~ std_normal();
  }
  {
    vector[S * A] base_flat = to_vector(log_baseline');          // row-major: (subject, analyte)
    vector[S * A] amp_flat = to_vector(log_amp');
    vector[P] s;
    vector[P] term;
    vector[N] total = rep_vector(0, N);
    vector[N] mu;
    if (T) s = pair_lag ./ exp(to_vector(log_tpeak_i')[pair_cell]);
    else s = pair_lag ./ exp(log_tpeak[pair_analyte]);
    term = exp(amp_flat[pair_cell] + gamma_dose[pair_analyte] .* pair_log_dose
               + delta_reexposure[pair_analyte] .* pair_reexposure
               + kappa_cycle[pair_analyte] .* pair_cycle_m1
               + k_shape[pair_analyte] .* (log(s) + 1 - s));
    for (p in 1:P) total[pair_obs[p]] += term[p];
    mu = base_flat[obs_cell] + log1p(total);
    if (N_unc > 0)
      log_y[1:N_unc] ~ normal(mu[1:N_unc], sigma_obs[obs_analyte[1:N_unc]]);
    if (N_cen > 0)
      target += normal_lcdf(log_limit[(N_unc + 1):N] | mu[(N_unc + 1):N],
                            sigma_obs[obs_analyte[(N_unc + 1):N]]);
  }
}
generated quantities {
  matrix[A, A] corr_amp = diag_matrix(rep_vector(1, A));
  matrix[S, A] log_peak_first;
  matrix[A, n_scenario] typical_peak;
  if (correlated) corr_amp = multiply_lower_tri_self_transpose(L_corr);
  for (j in 1:A) {
    log_peak_first[:, j] = log_baseline[:, j]
        + log1p_exp(log_amp[:, j] + gamma_dose[j] * first_log_dose + kappa_cycle[j] * first_cycle_m1);
    for (k in 1:n_scenario)
      typical_peak[j, k] = exp(log_baseline_mu[j]) * (1 + exp(log_amp_mu[j] + gamma_dose[j] * scenario[k, 1]
                           + delta_reexposure[j] * scenario[k, 2] + kappa_cycle[j] * scenario[k, 3]));
  }
}
