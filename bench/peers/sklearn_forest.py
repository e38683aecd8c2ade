"""scikit-learn's RandomForestClassifier on the matrices `bench/train.ts` wrote: the reference
peer of `npm run bench:train`. Reads float64/uint8 little-endian files, fits with the parameters
given as JSON (once per seed), and prints one JSON line: the first fit's seconds, each seed's
hold-out ROC AUC, and predict_proba's rows per second on the scoring batch. n_jobs=1, as the issue's comparison asks."""
import json
import sys
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score


def matrix(path, columns):
    return np.fromfile(path, dtype='<f8').reshape(-1, columns)


def main():
    spec = json.loads(sys.argv[1])
    columns = spec['columns']
    x_train = matrix(spec['xTrain'], columns)
    y_train = np.fromfile(spec['yTrain'], dtype='u1')
    x_test = matrix(spec['xTest'], columns)
    y_test = np.fromfile(spec['yTest'], dtype='u1')
    x_score = matrix(spec['xScore'], columns)
    p = spec['params']

    def fit(seed):
        model = RandomForestClassifier(
            n_estimators=p['nEstimators'], max_depth=p['maxDepth'], min_samples_leaf=p['minSamplesLeaf'],
            max_features='sqrt', class_weight='balanced', bootstrap=True, n_jobs=1, random_state=seed)
        started = time.perf_counter()
        model.fit(x_train, y_train)
        return model, time.perf_counter() - started

    # Timing and scoring from the first seed; the hold-out AUC of every seed (small sets are noisy).
    model, fit_seconds = fit(spec['seeds'][0])
    aucs = [roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])]
    for seed in spec['seeds'][1:]:
        aucs.append(roc_auc_score(y_test, fit(seed)[0].predict_proba(x_test)[:, 1]))
    model.predict_proba(x_score[:1000])  # warm up
    started = time.perf_counter()
    model.predict_proba(x_score)
    score_seconds = time.perf_counter() - started
    print(json.dumps({'fitSeconds': fit_seconds, 'aucs': aucs, 'scoreRowsPerSecond': len(x_score) / score_seconds,
                      'sklearn': __import__('sklearn').__version__}))


if __name__ == '__main__':
    main()
