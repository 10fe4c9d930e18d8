"""FastAPI + scikit-learn peer of `kiln serve`: the penguins species model (median-imputed,
standardized numbers; one-hot categories; an MLP with one hidden layer of 16) behind the same
POST /v1/predict contract (a JSON array of row objects in, classes and probabilities out).

    python serve_peer.py PENGUINS_CSV PORT
"""

import sys

import pandas as pd
import uvicorn
from fastapi import FastAPI, Request
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex", "year"]


def fit(path):
    data = pd.read_csv(path, na_values=["NA"])
    data = data[data["species"].notna()]
    features = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                CATEGORICAL,
            ),
        ]
    )
    model = Pipeline(
        [("features", features), ("mlp", MLPClassifier(hidden_layer_sizes=(16,), max_iter=500, random_state=42))]
    )
    x = data[NUMERIC + CATEGORICAL].astype({"year": str})
    model.fit(x, data["species"])
    return model


model = fit(sys.argv[1])
classes = [str(c) for c in model.classes_]
app = FastAPI()


@app.post("/v1/predict")
async def predict(request: Request):
    rows = await request.json()
    x = pd.DataFrame(rows, columns=NUMERIC + CATEGORICAL).astype({"year": str})
    probabilities = model.predict_proba(x)
    return {
        "model": {"id": "sklearn-mlp", "version": 1},
        "predictions": [
            {"class": classes[p.argmax()], "probabilities": dict(zip(classes, p.tolist()))}
            for p in probabilities
        ],
    }


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
