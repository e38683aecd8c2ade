"""The reference server of `npm run bench:http`, built like the first seed's API: FastAPI on uvicorn
(one worker), a scikit-learn Pipeline(StandardScaler, RandomForestClassifier) fitted at start-up on
the matrices `bench/http.ts` wrote, and the seed's routes:

- `GET /api/v1/health`;
- `GET /api/v1/subscribers/{id}/predict`: the subscriber's Gold row, None -> 0.0, predict_proba,
  and the seed's answer (probability rounded to 3, risk level, recommended action, model version,
  scored_at). A plain `def`, as in the seed, so FastAPI runs it on its thread pool;
- `POST /v1/models/{name}:predict` (KServe V1): `{"instances": [[...]]}` -> `{"predictions": [...]}`.

The feature store: the seed opens DuckDB and runs a SELECT per request; here the same subscribers'
rows sit in a dict of tuples (what `fetchone()` returns), which favours this server: no connection
to open, no query to plan. duckdb is not in the project's venv either. No API key check: the seed
has none.

Argument: one JSON object with port, name, columns, trees and the paths of the float64/uint8
little-endian files (training matrix, labels, stored rows with NaN where missing) and of the
subscriber ids (one per line). Prints "ready <sklearn version>" on stdout once the model is fitted,
just before uvicorn starts; the caller then waits for /api/v1/health to answer.
"""
import json
import math
import sys
from datetime import datetime, timezone

import numpy as np
import sklearn
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

ACTIONS = {
    'high': 'Assign retention manager & offer loyalty bundle immediately.',
    'medium': 'Send proactive win-back offer via SMS campaign.',
    'low': 'Standard engagement; monitor next billing cycle.',
}


class V1Request(BaseModel):
    instances: list[list[float | None]]


def build(spec):
    columns = spec['columns']
    x_train = np.fromfile(spec['xTrain'], dtype='<f8').reshape(-1, columns)
    y_train = np.fromfile(spec['yTrain'], dtype='u1')
    model = Pipeline([
        ('scaler', StandardScaler()),
        ('clf', RandomForestClassifier(
            n_estimators=spec['trees'], max_depth=6, min_samples_leaf=2, class_weight='balanced', random_state=42)),
    ])
    model.fit(x_train, y_train)
    rows = np.fromfile(spec['xStore'], dtype='<f8').reshape(-1, columns)
    with open(spec['ids'], encoding='utf8') as f:
        ids = [line.strip() for line in f if line.strip()]
    store = {sid: tuple(None if math.isnan(v) else float(v) for v in row) for sid, row in zip(ids, rows)}

    app = FastAPI(title='reference churn API')

    @app.get('/api/v1/health')
    def health():
        return {'status': 'ok', 'model_loaded': True, 'timestamp': datetime.now(timezone.utc).isoformat()}

    @app.get('/api/v1/subscribers/{subscriber_id}/predict')
    def predict_churn(subscriber_id: str):
        row = store.get(subscriber_id.upper())
        if row is None:
            raise HTTPException(404, f'Subscriber {subscriber_id} not found in Gold layer.')
        x = np.array([[v if v is not None else 0.0 for v in row]])
        proba = float(model.predict_proba(x)[0, 1])
        risk = 'high' if proba >= 0.65 else 'medium' if proba >= 0.35 else 'low'
        return {
            'subscriber_id': subscriber_id.upper(),
            'churn_probability': round(proba, 3),
            'risk_level': risk,
            'recommended_action': ACTIONS[risk],
            'model_version': 'RandomForest v1.0',
            'scored_at': datetime.now(timezone.utc).isoformat(),
        }

    @app.post('/v1/models/{name}:predict')
    def kserve_predict(name: str, body: V1Request):
        if name != spec['name']:
            raise HTTPException(404, f'model {name} is not served here')
        x = np.array([[v if v is not None else 0.0 for v in row] for row in body.instances], dtype=float)
        if x.ndim != 2 or x.shape[1] != columns:
            raise HTTPException(400, f'each instance needs {columns} values')
        return {'predictions': model.predict_proba(x)[:, 1].tolist()}

    return app


def main():
    spec = json.loads(sys.argv[1])
    app = build(spec)
    print(f'ready {sklearn.__version__}', flush=True)
    # uvicorn's defaults otherwise (access log on, its fastest installed loop and HTTP parser).
    uvicorn.run(app, host='127.0.0.1', port=spec['port'], workers=1, log_level='info')


if __name__ == '__main__':
    main()
