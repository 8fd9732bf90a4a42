/*-------------------------------------------------------------------------
 *
 * stats_ks_dist.c
 *	  The Kolmogorov and Smirnov distributions of one sample of size n:
 *	  the two-sided tail P(D_n > x) that the asymptotic branch of the
 *	  two-sample KS test uses (stats_rank.c), as SciPy's kstwo.sf, and the
 *	  one-sided Smirnov tail it is built from.
 *
 * Methods after Simard and L'Ecuyer (2011): Ruben-Gambino closed forms,
 * the Birnbaum-Tingey sum, Durbin's matrix (Marsaglia, Tsang and Wang),
 * Pomeranz's recursion and the Pelz-Good expansion; docs/statistics.md
 * lists which applies where.
 *
 * Plain C over doubles: no PostgreSQL headers (see stats.h).
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

#define KS_SCALE_EXP	128		/* rescaling step of the Kolmogorov routines */

static const double pi_d = 3.14159265358979323846;

/*
 * Smirnov's one-sided distribution: P(D+_n >= x), Birnbaum-Tingey sum of
 * positive terms, in long double and through log-gamma.
 */
static double
SmirnovSf(long n, double x)
{
	long		nn;
	long		v;
	long double lg_n1;
	long double sum = 0.0L;

	if (x <= 0.0)
		return 1.0;
	if (x >= 1.0)
		return 0.0;
	nn = (long) floor((double) n * (1.0 - x));
	lg_n1 = lgammal((long double) n + 1.0L);
	for (v = 0; v <= nn; v++)
	{
		long double evn = (long double) x + (long double) v / (long double) n;
		long double omevn = 1.0L - evn;
		long double t;

		if (omevn <= 0.0L)
		{
			/* 0^(n-v) is 0 unless v == n */
			if (v == n)
				sum += expl((long double) (v - 1) * logl(evn));
			continue;
		}
		t = lg_n1 - lgammal((long double) v + 1.0L) -
			lgammal((long double) (n - v) + 1.0L) +
			(long double) (v - 1) * logl(evn) +
			(long double) (n - v) * logl(omevn);
		sum += expl(t);
	}
	return (double) (sum * (long double) x);
}

/*
 * MatMulInto
 *		out = a * b for m x m row-major matrices, through the scratch matrix
 *		tmp, so that out may be a or b.
 */
static void
MatMulInto(double *out, const double *a, const double *b, double *tmp, long m)
{
	long		i;
	long		j;
	long		r;

	for (i = 0; i < m; i++)
		for (j = 0; j < m; j++)
		{
			double		s = 0.0;

			for (r = 0; r < m; r++)
				s += a[i * m + r] * b[r * m + j];
			tmp[i * m + j] = s;
		}
	memcpy(out, tmp, sizeof(double) * (size_t) (m * m));
}

/*
 * Durbin's matrix formula as Marsaglia, Tsang and Wang compute it:
 * P(D_n < d) = n!/n^n (H^n)_{kk}, with binary powering and explicit
 * exponent bookkeeping.  Returns the CDF; -1 when out of memory.
 */
static double
KolmogorovCdfDurbin(long n, double d)
{
	double		nd = (double) n * d;
	int			k;
	int			m;
	double		h;
	double	   *hm;
	double	   *pw;
	double	   *tmp;
	double	   *v;
	double	   *w;
	double		fac;
	double		tt;
	double		p;
	long double lp;
	long		nn;
	int			expnt = 0;
	int			hexpnt = 0;
	int			i;
	int			j;
	int			r;
	long		ii;

	if (d >= 1.0)
		return 1.0;
	if (nd <= 0.5)
		return 0.0;
	k = (int) ceil(nd);
	h = (double) k - nd;
	m = 2 * k - 1;

	hm = (double *) malloc(sizeof(double) * (size_t) (3 * m * m + 2 * m));
	if (hm == NULL)
		return -1.0;
	pw = hm + m * m;
	tmp = pw + m * m;
	v = tmp + m * m;
	w = v + m;

	fac = 1.0;
	for (j = 1; j <= m; j++)
	{
		v[j - 1] = 1.0 - pow(h, (double) j);
		w[j - 1] = fac;
		fac /= j;
		v[j - 1] *= fac;
	}
	tt = pow(fmax(2.0 * h - 1.0, 0.0), (double) m) - 2.0 * pow(h, (double) m);
	v[m - 1] = (1.0 + tt) * fac;

	for (i = 0; i < m * m; i++)
		hm[i] = 0.0;
	for (i = 1; i < m; i++)
		for (r = i - 1; r < m; r++)
			hm[r * m + i] = w[r - i + 1];
	for (r = 0; r < m; r++)
		hm[r * m] = v[r];
	for (j = 0; j < m; j++)
		hm[(m - 1) * m + j] = v[m - 1 - j];

	for (i = 0; i < m * m; i++)
		pw[i] = 0.0;
	for (i = 0; i < m; i++)
		pw[i * m + i] = 1.0;

	nn = n;
	while (nn > 0)
	{
		if (nn % 2)
		{
			MatMulInto(pw, pw, hm, tmp, m);	/* pw = pw * hm */
			expnt += hexpnt;
		}
		MatMulInto(hm, hm, hm, tmp, m);	/* hm = hm * hm */
		hexpnt *= 2;
		if (fabs(hm[(k - 1) * m + (k - 1)]) > ldexp(1.0, KS_SCALE_EXP))
		{
			for (i = 0; i < m * m; i++)
				hm[i] = ldexp(hm[i], -KS_SCALE_EXP);
			hexpnt += KS_SCALE_EXP;
		}
		nn /= 2;
	}

	p = pw[(k - 1) * m + (k - 1)];
	free(hm);

	lp = p;
	for (ii = 1; ii <= n; ii++)
	{
		lp = (long double) ii * lp / (long double) n;
		if (fabsl(lp) < ldexpl(1.0L, -KS_SCALE_EXP))
		{
			lp = ldexpl(lp, KS_SCALE_EXP);
			expnt -= KS_SCALE_EXP;
		}
	}
	if (expnt != 0)
		lp = ldexpl(lp, expnt);
	return (double) lp;
}

/* row interval of Pomeranz's recursion */
static void
PomeranzJ1J2(long i, long n, long ll, long ceilf, long roundf,
			 long *j1, long *j2)
{
	long		a;
	long		b;

	if (i == 0)
	{
		a = -ll - ceilf - 1;
		b = ll + ceilf - 1;
	}
	else
	{
		long		ip1div2 = (i + 1) / 2;
		long		ip1mod2 = (i + 1) % 2;

		if (ip1mod2 == 0)
		{
			if (ip1div2 == n + 1)
			{
				a = n - ll - ceilf - 1;
				b = n + ll + ceilf - 1;
			}
			else
			{
				a = ip1div2 - 1 - ll - roundf - 1;
				b = ip1div2 + ll - 1 + ceilf - 1;
			}
		}
		else
		{
			a = ip1div2 - 1 - ll - 1;
			b = ip1div2 + ll + roundf - 1;
		}
	}
	*j1 = (a + 2 > 0) ? a + 2 : 0;
	*j2 = (b < n) ? b : n;
}

/*
 * Pomeranz's recursion for P(D_n <= x) (small n).  Returns -1 when out of
 * memory.
 */
static double
KolmogorovCdfPomeranz(long n, double x)
{
	double		t = (double) n * x;
	long		ll = (long) floor(t);
	double		f = t - (double) ll;
	double		g = fmin(f, 1.0 - f);
	long		ceilf = (f > 0) ? 1 : 0;
	long		roundf = (f > 0.5) ? 1 : 0;
	long		npwrs = 2 * (ll + 1);
	double	   *buf;
	double	   *gpower;
	double	   *twogpower;
	double	   *onem2gpower;
	double	   *v0;
	double	   *v1;
	long		v0s = 0;
	long		v1s = 0;
	long		j1;
	long		j2;
	long		i;
	long		mm;
	int			expnt = 0;
	double		ans;
	double		scale_hi = ldexp(1.0, KS_SCALE_EXP);
	double		scale_lo = ldexp(1.0, -KS_SCALE_EXP);

	buf = (double *) calloc((size_t) (5 * npwrs), sizeof(double));
	if (buf == NULL)
		return -1.0;
	gpower = buf;
	twogpower = buf + npwrs;
	onem2gpower = buf + 2 * npwrs;
	v0 = buf + 3 * npwrs;
	v1 = buf + 4 * npwrs;

	gpower[0] = twogpower[0] = onem2gpower[0] = 1.0;
	for (mm = 1; mm < npwrs; mm++)
	{
		gpower[mm] = gpower[mm - 1] * (g / n) / mm;
		twogpower[mm] = twogpower[mm - 1] * (2 * g / n) / mm;
		onem2gpower[mm] = onem2gpower[mm - 1] * ((1 - 2 * g) / n) / mm;
	}
	v1[0] = 1.0;

	PomeranzJ1J2(0, n, ll, ceilf, roundf, &j1, &j2);
	for (i = 1; i < 2 * n + 2; i++)
	{
		long		k1 = j1;
		double	   *swap = v0;
		long		ln2;
		const double *pwrs;

		v0 = v1;
		v1 = swap;
		v0s = v1s;
		for (mm = 0; mm < npwrs; mm++)
			v1[mm] = 0.0;
		PomeranzJ1J2(i, n, ll, ceilf, roundf, &j1, &j2);
		if (i == 1 || i == 2 * n + 1)
			pwrs = gpower;
		else
			pwrs = (i % 2) ? twogpower : onem2gpower;
		ln2 = j2 - k1 + 1;
		if (ln2 > 0)
		{
			long		conv_start = j1 - k1;
			long		conv_len = j2 - j1 + 1;
			long		base = k1 - v0s;
			double		vmax = 0.0;
			long		c;

			/* conv[q] = sum_a v0[base + a] * pwrs[q - a], a, q - a < ln2 */
			for (c = 0; c < conv_len; c++)
			{
				long		q = conv_start + c;
				double		s = 0.0;
				long		aa;

				for (aa = 0; aa <= q && aa < ln2; aa++)
				{
					if (q - aa >= ln2 || base + aa >= npwrs || q - aa >= npwrs)
						continue;
					s += v0[base + aa] * pwrs[q - aa];
				}
				v1[c] = s;
			}
			for (mm = 0; mm < npwrs; mm++)
				if (v1[mm] > vmax)
					vmax = v1[mm];
			if (vmax > 0 && vmax < scale_lo)
			{
				for (mm = 0; mm < npwrs; mm++)
					v1[mm] *= scale_hi;
				expnt -= KS_SCALE_EXP;
			}
			v1s = v0s + j1 - k1;
		}
	}
	ans = v1[n - v1s];
	free(buf);
	for (mm = 1; mm <= n; mm++)
	{
		if (fabs(ans) > scale_hi)
		{
			ans *= scale_lo;
			expnt += KS_SCALE_EXP;
		}
		ans *= mm;
	}
	if (expnt != 0)
		ans = ldexp(ans, expnt);
	return ans;
}

/*
 * Pelz-Good asymptotic expansion of P(D_n <= x) (large n).
 */
static double
KolmogorovCdfPelzGood(long n, double x)
{
	double		z;
	double		z2;
	double		z3;
	double		z4;
	double		z6;
	double		qlog;
	double		q;
	double		k1a,
				k1b,
				k2a,
				k2b,
				k2c,
				k3a,
				k3b,
				k3c,
				k3d;
	double		kk[4] = {0.0, 0.0, 0.0, 0.0};
	double		sqrt2pi = sqrt(2.0 * pi_d);
	double		pi2 = pi_d * pi_d;
	double		pi4 = pi2 * pi2;
	double		pi6 = pi4 * pi2;
	double		sqrt3z;
	double		k2extra = 0.0;
	double		k3extra = 0.0;
	long		maxk;
	long		k;
	int			i;

	if (x <= 0.0)
		return 0.0;
	if (x >= 1.0)
		return 1.0;
	z = sqrt((double) n) * x;
	z2 = z * z;
	z3 = z2 * z;
	z4 = z2 * z2;
	z6 = z4 * z2;
	qlog = -pi2 / 8 / z2;
	if (qlog < -708)
		return 0.0;
	q = exp(qlog);

	k1a = -z2;
	k1b = pi2 / 4;
	k2a = 6 * z6 + 2 * z4;
	k2b = (2 * z4 - 5 * z2) * pi2 / 4;
	k2c = pi4 * (1 - 2 * z2) / 16;
	k3d = pi6 * (5 - 30 * z2) / 64;
	k3c = pi4 * (-60 * z2 + 212 * z4) / 16;
	k3b = pi2 * (135 * z4 - 96 * z6) / 4;
	k3a = -30 * z6 - 90 * pow(z, 8);

	maxk = (long) ceil(16 * z / pi_d);
	for (k = maxk; k > 0; k--)
	{
		double		mo = 2.0 * k - 1;
		double		m2 = mo * mo;
		double		m4 = m2 * m2;
		double		m6 = m4 * m2;
		double		qpower = pow(q, 8.0 * k);
		double		coeffs[4];

		coeffs[0] = 1.0;
		coeffs[1] = k1a + k1b * m2;
		coeffs[2] = k2a + k2b * m2 + k2c * m4;
		coeffs[3] = k3a + k3b * m2 + k3c * m4 + k3d * m6;
		for (i = 0; i < 4; i++)
			kk[i] = kk[i] * qpower + coeffs[i];
	}
	for (i = 0; i < 4; i++)
		kk[i] = kk[i] * q * sqrt2pi;
	kk[0] /= z;
	kk[1] /= 6 * z4;
	kk[2] /= 72 * pow(z, 7);
	kk[3] /= 6480 * pow(z, 10);

	q = exp(-pi2 / 2 / z2);
	sqrt3z = sqrt(3.0) * z;
	for (k = maxk; k > 0; k--)
	{
		double		ksq = (double) k * (double) k;
		double		qp = pow(q, ksq);
		double		kspi = pi_d * (double) k;

		k2extra += ksq * qp;
		k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ksq * qp;
	}
	k2extra *= pi2 * sqrt2pi / (-36 * z3);
	kk[2] += k2extra;
	k3extra *= pi2 * sqrt2pi / (216 * z6);
	kk[3] += k3extra;
	for (i = 1; i < 4; i++)
		kk[i] /= pow((double) n, i / 2.0);
	return kk[0] + kk[1] + kk[2] + kk[3];
}

/* log(n!/n^n) by Stirling's series */
static double
LogFactorialOverPower(long n)
{
	static const double c[8] = {
		-2.955065359477124183e-2, 6.4102564102564102564e-3,
		-1.9175269175269175269e-3, 8.4175084175084175084e-4,
		-5.952380952380952381e-4, 7.9365079365079365079e-4,
		-2.7777777777777777778e-3, 8.3333333333333333333e-2
	};
	double		rn = 1.0 / n;
	double		y = rn / n;
	double		poly = 0.0;
	int			i;

	for (i = 0; i < 8; i++)
		poly = poly * y + c[i];
	return log((double) n) / 2 - n + log(2 * pi_d) / 2 + rn * poly;
}

/*
 * mlma_kolmogorov_sf
 *		P(D_n > x) of the two-sided one-sample statistic (SciPy's
 *		kstwo.sf), choosing between the exact formulas and approximations as
 *		Simard and L'Ecuyer (2011) recommend.  Returns -1 when out of memory.
 */
double
mlma_kolmogorov_sf(long n, double x)
{
	double		t;
	double		nx2;
	double		cdf;

	if (x >= 1.0)
		return 0.0;
	if (x <= 0.5 / n)
		return 1.0;
	t = n * x;
	if (t <= 1.0)
	{
		double		prob;

		if (t <= 0.5)
			return 1.0;
		if (n <= 140)
		{
			long		i;

			prob = 1.0;
			for (i = 1; i <= n; i++)
				prob *= (double) i * (1.0 / n) * (2 * t - 1);
		}
		else
			prob = exp(LogFactorialOverPower(n) + n * log(2 * t - 1));
		return mlma_clip_probability(1.0 - prob);
	}
	if (t >= n - 1)
		return mlma_clip_probability(2 * pow(1.0 - x, (double) n));
	if (x >= 0.5)
		return mlma_clip_probability(2 * SmirnovSf(n, x));

	nx2 = t * x;
	if (n <= 140)
	{
		if (nx2 <= 0.754693)
			cdf = KolmogorovCdfDurbin(n, x);
		else if (nx2 <= 4)
			cdf = KolmogorovCdfPomeranz(n, x);
		else
			return mlma_clip_probability(2 * SmirnovSf(n, x));
		if (cdf == -1.0)
			return -1.0;
		return mlma_clip_probability(1.0 - cdf);
	}
	if (nx2 >= 370.0)
		return 0.0;
	if (nx2 >= 2.2)
		return mlma_clip_probability(2 * SmirnovSf(n, x));
	if (n <= 100000 && n * pow(x, 1.5) <= 1.4)
	{
		cdf = KolmogorovCdfDurbin(n, x);
		if (cdf == -1.0)
			return -1.0;
	}
	else
		cdf = KolmogorovCdfPelzGood(n, x);
	return mlma_clip_probability(1.0 - cdf);
}
