"""API retrieval (Ray-free): the corpus of API documents, BM25, NDCG, and the dense retriever the solve
stage uses in the open-domain setting: `Retriever.load(dir).top_k(query, k)`."""
from toolweave.retrieval.corpus import ApiDoc, RetrievalQuery, docs_from_tools, load_query_files, split_queries
from toolweave.retrieval.dense import Retriever

__all__ = ["ApiDoc", "RetrievalQuery", "Retriever", "docs_from_tools", "load_query_files", "split_queries"]
