// The CDK app: one stack per stage (context `stage`, default dev). See infra/README.md.
import { App } from 'aws-cdk-lib';
import { addScorePipeline } from '../lib/score-pipeline-stack.ts';

const app = new App();
addScorePipeline(app);
app.synth();
