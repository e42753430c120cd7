// The registry over the S3 backend (moto): the registry conformance suite.
import { randomBytes } from 'node:crypto';
import { S3PersistenceProvider, type S3ReplicaConfig } from '../../adapters/persistence';
import { requireTestEnv } from '../support/env';
import { deleteTestBucket } from '../conformance/persistence-conformance';
import { registryConformance } from '../conformance/registry-conformance';

const endpoint = requireTestEnv('motoEndpoint');
const bucket = `bf-registry-${randomBytes(4).toString('hex')}`;
const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const config = (prefix: string): S3ReplicaConfig => ({ endpoint, bucket, prefix, forcePathStyle: true, credentials, createBucket: true });

registryConformance({
  kind: 's3',
  namespaces: ['team-a', 'team-b'],
  make: (scope) => ({
    plain: new S3PersistenceProvider({ replicas: [config(`${scope}/plain/`)] }),
    secretInner: new S3PersistenceProvider({ replicas: [config(`${scope}/secret/`)] }),
  }),
  cleanup: () => deleteTestBucket(endpoint, bucket),
});
