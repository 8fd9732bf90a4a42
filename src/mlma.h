/*-------------------------------------------------------------------------
 *
 * mlma.h
 *	  Declarations shared by the backend parts of mlma.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MLMA_H
#define MLMA_H

extern double mlma_fdr;

#endif							/* MLMA_H */
